"""Step: segment membership changes (pure), and the definitions the worker currently knows.

:func:`membership_changes` compares who is in which segment now (from the query built by
:mod:`ecrm_schemas.segment_sql`) with the stored membership, and gives the
``segment.entered`` / ``segment.exited`` events and the membership rows to store.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ecrm_schemas.segments import SegmentDefinition, SegmentMembershipChanged, explain

Trigger = Literal["event", "timer", "definition"]


class SegmentRegistry:
    """The definitions read from the segment-definitions topic so far (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._definitions: dict[str, SegmentDefinition] = {}
        self._changed: set[str] = set()

    def put(self, definition: SegmentDefinition) -> None:
        with self._lock:
            if self._definitions.get(definition.id) != definition:
                self._definitions[definition.id] = definition
                self._changed.add(definition.id)

    def delete(self, segment_id: str) -> None:
        with self._lock:
            if self._definitions.pop(segment_id, None) is not None:
                self._changed.add(segment_id)

    def current(self) -> list[SegmentDefinition]:
        with self._lock:
            return sorted(self._definitions.values(), key=lambda d: d.id)

    def take_changed(self) -> set[str]:
        """Ids defined, redefined or deleted since the last call."""
        with self._lock:
            changed, self._changed = self._changed, set()
            return changed


@dataclass(slots=True)
class MembershipUpdate:
    events: list[SegmentMembershipChanged] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    """``segment_membership`` rows: segment_id, customer_id, is_member, changed_at, reason, version."""
    history: list[list[Any]] = field(default_factory=list)
    """``segment_changes`` rows: at, segment_id, segment_name, customer_id, change, trigger, reason, event_id."""


def membership_changes(
    definitions: list[SegmentDefinition],
    evaluated: Mapping[str, set[str]],
    current: Mapping[str, set[str]],
    now: datetime,
    trigger: Trigger,
    cause: str,
    trigger_message_ids: Mapping[str, list[str]] | None = None,
    *,
    profile_versions: Mapping[str, int] | None = None,
    backfill: set[str] | None = None,
) -> MembershipUpdate:
    """The enters and exits that bring ``current`` to ``evaluated``.

    ``evaluated``: customer → segments they satisfy now, for every customer in scope.
    ``current``: customer → segments they are stored as members of (customers in scope, or
    members of a segment being deleted). Members of a segment no longer defined leave it;
    customers in ``current`` but not in ``evaluated`` (a profile merged away) leave theirs.
    ``cause``: what makes ids deterministic for this evaluation (the batch's token, the tick).
    ``profile_versions``: the profile version each customer's evaluation saw; ``backfill``: the
    customers whose changes imported events took part in (both carried on the events).
    """
    by_id = {d.id: d for d in definitions}
    update = MembershipUpdate()
    versions, imported = profile_versions or {}, backfill or set()

    def add(change: Literal["entered", "exited"], segment_id: str, name: str, customer: str, reason: str) -> None:
        _add(update, change, segment_id, name, customer, reason, now, trigger, cause,
             (trigger_message_ids or {}).get(customer, []), versions.get(customer), customer in imported)  # fmt: skip

    for customer in sorted(set(evaluated) | set(current)):
        now_in, was_in = evaluated.get(customer, set()), current.get(customer, set())
        for segment_id in sorted(now_in - was_in):
            entered = by_id[segment_id]
            add("entered", entered.id, entered.name, customer, explain(entered.condition))
        for segment_id in sorted(was_in - now_in):
            definition = by_id.get(segment_id)
            if definition is None:
                name, reason = segment_id, "the segment was deleted"
            elif customer not in evaluated:
                name, reason = definition.name, "the profile was merged into another customer"
            else:
                name, reason = definition.name, "no longer " + explain(definition.condition)
            add("exited", segment_id, name, customer, reason)
    return update


def _add(
    update: MembershipUpdate,
    change: Literal["entered", "exited"],
    segment_id: str,
    segment_name: str,
    customer: str,
    reason: str,
    now: datetime,
    trigger: Trigger,
    cause: str,
    message_ids: list[str],
    profile_version: int | None = None,
    backfill: bool = False,
) -> None:
    event_id = hashlib.sha256(f"{segment_id}\0{customer}\0{change}\0{cause}".encode()).hexdigest()[:32]
    update.events.append(
        SegmentMembershipChanged(
            event_id=event_id,
            type=f"segment.{change}",
            segment_id=segment_id,
            segment_name=segment_name,
            customer_id=customer,
            at=now,
            trigger=trigger,
            trigger_message_ids=message_ids,
            reason=reason,
            profile_version=profile_version,
            backfill=backfill,
        )
    )
    version = int(now.timestamp() * 1_000_000)
    update.rows.append([segment_id, customer, int(change == "entered"), now, reason, version])
    update.history.append([now, segment_id, segment_name, customer, change, trigger, reason, event_id])
