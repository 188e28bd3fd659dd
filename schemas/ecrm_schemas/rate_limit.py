"""Token buckets per key (the ``token-bucket`` library): what every rate limit of the pipeline
is made of (the collector's per source, the console's sign-in attempts, the chat's messages).

Each key's bucket holds up to ``burst`` tokens and refills at ``per_second``; an admission takes
one token. Buckets live in the process: with N replicas a key may reach N times the rate.
"""

from __future__ import annotations

import math

import token_bucket


class TokenBuckets:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self._storage = token_bucket.MemoryStorage()
        self._limiter = token_bucket.Limiter(per_second, burst, self._storage)

    def admit(self, key: str) -> int | None:
        """Take a token for ``key``: ``None`` if admitted, else the whole seconds to wait before retrying."""
        if self._limiter.consume(key):
            return None
        missing = 1.0 - self._storage.get_token_count(key)
        return max(1, math.ceil(missing / self.per_second))
