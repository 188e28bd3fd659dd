"""Requests per source, limited by a token bucket (the ``token-bucket`` library).

Each source's bucket holds up to ``burst`` tokens and refills at ``per_second``; a request
takes one token. An empty bucket means 429 with ``Retry-After`` (whole seconds until the
next token). Buckets are per collector process: with N replicas a source may reach N times
the rate, which the operator sizes for (see the README).
"""

from __future__ import annotations

import math

import token_bucket


class SourceRateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self._storage = token_bucket.MemoryStorage()
        self._limiter = token_bucket.Limiter(per_second, burst, self._storage)

    def admit(self, key: str) -> int | None:
        """Take a token for ``key``: ``None`` if admitted, else the seconds to wait before retrying."""
        if self._limiter.consume(key):
            return None
        missing = 1.0 - self._storage.get_token_count(key)
        return max(1, math.ceil(missing / self.per_second))
