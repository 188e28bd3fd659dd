"""The worker's profile cache: used only while its version is the stored one (pure)."""

from datetime import UTC, datetime

from ecrm_aggregator.profile_cache import ProfileCache
from ecrm_aggregator.profile_state import ProfileState

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def _profile(customer_id: str, version: int) -> ProfileState:
    return ProfileState(customer_id=customer_id, first_seen=NOW, last_seen=NOW, version=version)


def test_a_cached_profile_is_used_only_at_its_stored_version() -> None:
    cache = ProfileCache(10)
    cache.put([_profile("u1", 3), _profile("u2", 5)])
    usable, to_read = cache.split({"u1": 3, "u2": 6, "u3": 1}, ["u1", "u2", "u3"])
    assert list(usable) == ["u1"] and usable["u1"].version == 3
    assert to_read == ["u2", "u3"]  # written elsewhere since, and never cached


def test_a_profile_no_longer_stored_is_forgotten() -> None:
    """An erasure deletes the rows: the cached copy (personal data) goes too."""
    cache = ProfileCache(10)
    cache.put([_profile("u1", 3)])
    assert cache.split({}, ["u1"]) == ({}, [])
    assert len(cache) == 0
    assert cache.split({"u1": 3}, ["u1"]) == ({}, ["u1"])


def test_the_least_recently_used_go_first_and_zero_keeps_nothing() -> None:
    cache = ProfileCache(2)
    cache.put([_profile("u1", 1), _profile("u2", 1)])
    cache.split({"u1": 1}, ["u1"])  # u1 used: u2 is now the oldest
    cache.put([_profile("u3", 1)])
    assert cache.split({"u1": 1, "u2": 1, "u3": 1}, ["u1", "u2", "u3"])[1] == ["u2"]
    off = ProfileCache(0)
    off.put([_profile("u1", 1)])
    assert off.split({"u1": 1}, ["u1"]) == ({}, ["u1"])
