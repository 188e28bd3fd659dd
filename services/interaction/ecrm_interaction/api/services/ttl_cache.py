"""A small time-bounded cache (per process)."""

from __future__ import annotations

import time
from typing import Any


class TtlCache:
    """Values kept ``ttl_s`` seconds; past ``max_items`` the cache starts again empty."""

    def __init__(self, ttl_s: float, max_items: int = 50_000) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any | None:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._items) >= self.max_items:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)
