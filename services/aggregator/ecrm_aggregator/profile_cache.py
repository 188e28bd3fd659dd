"""The worker's copy of the profiles it last read or wrote, trusted only after a version check (pure).

Reading a batch's profiles back from ClickHouse (``FINAL`` over every column, then a
:class:`ProfileState` built from each row) was the largest read of a batch. A worker wrote
most of those profiles itself one batch earlier, so it keeps them, and per batch asks
ClickHouse only for each customer's current version (two narrow columns). A cached profile
is used when its version is the stored one; any other writer (the unmerge CLI, another
worker after a rebalance, a timer review) bumps the version, and an erasure deletes the
rows, so those profiles are read again (or dropped). Every write of a profile raises its
version: folding adds one per event, a merge mark or a review adds one.

Entries are shared with the batch that reads them: nothing may change a cached
:class:`ProfileState` in place (the fold works on a copy, :meth:`ProfileState.copy`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from ecrm_aggregator.profile_state import ProfileState


class ProfileCache:
    """At most ``capacity`` profiles by customer id; the least recently used go first (0: off)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, ProfileState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def split(
        self, stored_versions: Mapping[str, int], wanted: Iterable[str]
    ) -> tuple[dict[str, ProfileState], list[str]]:
        """(profiles usable as they are, ids to read from ClickHouse) for ``wanted``.

        ``stored_versions``: each wanted customer's version in ClickHouse; a customer missing
        from it has no profile (never seen, or erased), and is dropped from the cache.
        """
        usable: dict[str, ProfileState] = {}
        to_read: list[str] = []
        for customer_id in wanted:
            version = stored_versions.get(customer_id)
            if version is None:
                self._entries.pop(customer_id, None)
                continue
            cached = self._entries.get(customer_id)
            if cached is not None and cached.version == version:
                self._entries.move_to_end(customer_id)
                usable[customer_id] = cached
            else:
                to_read.append(customer_id)
        return usable, to_read

    def put(self, profiles: Iterable[ProfileState]) -> None:
        """Keep ``profiles`` (as stored), replacing older copies."""
        if not self.capacity:
            return
        entries = self._entries
        for profile in profiles:
            entries[profile.customer_id] = profile
            entries.move_to_end(profile.customer_id)
        while len(entries) > self.capacity:
            entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
