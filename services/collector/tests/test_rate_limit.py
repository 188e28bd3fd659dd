import pytest

from ecrm_collector.rate_limit import SourceRateLimiter


def test_a_burst_is_admitted_then_refused_with_the_wait_until_the_next_token() -> None:
    limiter = SourceRateLimiter(per_second=0.5, burst=3)
    assert [limiter.admit("a") for _ in range(3)] == [None, None, None]
    assert limiter.admit("a") == 2  # one token every 2 s


def test_buckets_are_per_key() -> None:
    limiter = SourceRateLimiter(per_second=0.01, burst=1)
    assert limiter.admit("a") is None
    assert limiter.admit("a") is not None
    assert limiter.admit("b") is None


def test_tokens_come_back_at_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("token_bucket.storage.time.monotonic", lambda: clock[0])
    limiter = SourceRateLimiter(per_second=10, burst=2)
    assert limiter.admit("a") is None and limiter.admit("a") is None
    assert limiter.admit("a") == 1
    clock[0] += 0.1  # one token
    assert limiter.admit("a") is None
    assert limiter.admit("a") is not None
