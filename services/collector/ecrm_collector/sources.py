"""What the collector authenticates write keys against: the sources registry
(:mod:`ecrm_schemas.sources`, the file ``COLLECTOR_SOURCES_FILE``), re-read when it changes."""

from __future__ import annotations

import time
from pathlib import Path

from ecrm_schemas.sources import (
    KEY_PREFIX,
    Source,
    SourceError,
    SourceKind,
    SourceRegistry,
    editing,
    hash_key,
    new_key,
)

__all__ = [
    "KEY_PREFIX",
    "Source",
    "SourceDirectory",
    "SourceError",
    "SourceKind",
    "SourceRegistry",
    "editing",
    "hash_key",
    "new_key",
]


class SourceDirectory:
    """What the collector authenticates against: the registry file, re-read when it changes
    (so ``sources add``/``revoke`` apply without a restart), plus server keys from the environment."""

    def __init__(self, path: Path | None, env_keys: frozenset[str], check_every_s: float = 1.0) -> None:
        self.path, self.env_keys, self.check_every_s = path, env_keys, check_every_s
        self._stamp: float | None = None
        self._next_check = 0.0
        self._registry = self._load()

    def _load(self) -> SourceRegistry:
        registry = SourceRegistry.load(self.path)
        for index, key in enumerate(sorted(self.env_keys)):
            registry.add_known_key(f"env-{index}", "server", key)
        self._stamp = self.path.stat().st_mtime if self.path and self.path.exists() else None
        return registry

    def find(self, presented_key: str) -> Source | None:
        now = time.monotonic()
        if self.path is not None and now >= self._next_check:
            self._next_check = now + self.check_every_s
            stamp = self.path.stat().st_mtime if self.path.exists() else None
            if stamp != self._stamp:
                self._registry = self._load()
        return self._registry.find(presented_key)
