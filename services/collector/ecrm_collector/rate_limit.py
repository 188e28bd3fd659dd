"""Requests per source: a token bucket per source's key hash (:mod:`ecrm_schemas.rate_limit`).

A request takes one token; an empty bucket means 429 with ``Retry-After`` (whole seconds until
the next token). Buckets are per collector process: with N replicas a source may reach N times
the rate, which the operator sizes for (see the README).
"""

from __future__ import annotations

from ecrm_schemas.rate_limit import TokenBuckets


class SourceRateLimiter(TokenBuckets):
    """``admit(key_hash)``: None, or the seconds a source waits before its next request."""
