"""The aggregator's chain of steps, in one place.

    records ─▶ decode_records ─▶ plan_batch
      [stored positions of the batch's message ids] ─▶ new_events ─▶ [insert events]
      [links and profiles of the batch's ids] ─▶ identity.decide ─▶ [insert links, merge log]
      group_by_customer ─▶ merges_to_apply ─▶ [their stored events] ─▶ fold_batch ─▶ [insert profiles]
      segment_sql.membership_query ─▶ [evaluate] + [stored membership] ─▶ segmentation.membership_changes
      dead letters, ProfileChanged, segment changes ─▶ [produce] ─▶ [insert membership] ─▶ [commit offsets]

    timer: [stale profiles] ─▶ review_traits ─▶ [insert, produce]; then segments as above over
           every customer of the worker's partitions

Bracketed steps are I/O done by :mod:`ecrm_aggregator.batch_writer`; everything here is
pure and unit-tested without a broker or ClickHouse.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecrm_aggregator.computed_traits import compute
from ecrm_aggregator.decode import Decoded, PositionedEvent, SourceRecord, decode_records
from ecrm_aggregator.identity import IdentityDecision, LinkRequest, known_user_ids, link_requests
from ecrm_aggregator.profile_folding import Folded, changed_traits, customer_id_of, fold, recompute
from ecrm_aggregator.rows import event_row, profile_row
from ecrm_aggregator.segmentation import MembershipUpdate
from ecrm_schemas.events import TrackEvent
from ecrm_schemas.profile import CustomerProfile, ProfileChanged, TriggerEvent


@dataclass(slots=True)
class BatchPlan:
    """What a batch of records becomes before anything is read from ClickHouse."""

    decoded: Decoded
    link_requests: list[LinkRequest]
    dedup_token: str
    """Deterministic for the same records, so a redelivered batch is stored once."""

    @property
    def keys(self) -> list[str]:
        """The ids the batch's events were sent with."""
        return sorted({customer_id_of(p) for p in self.decoded.events})

    @property
    def message_ids(self) -> list[str]:
        return [p.event.messageId for p in self.decoded.events]

    def ids_to_look_up(self) -> list[str]:
        """Every id whose identity links and profile the batch may need."""
        ids = set(self.keys)
        for request in self.link_requests:
            ids |= {request.anonymous_id, request.user_id}
        return sorted(ids)

    @property
    def known_users(self) -> set[str]:
        return known_user_ids(self.decoded.events)


@dataclass(slots=True)
class NewEvents:
    rows: list[list[Any]]
    """Rows of events not stored yet."""
    to_fold: list[PositionedEvent]
    """Events to fold: all but repeats of a message id stored from another Kafka position."""


@dataclass(slots=True)
class FoldResult:
    profile_rows: list[list[Any]] = field(default_factory=list)
    changes: list[ProfileChanged] = field(default_factory=list)
    membership: MembershipUpdate = field(default_factory=MembershipUpdate)


def dedup_token(records: list[SourceRecord]) -> str:
    spans: dict[int, tuple[int, int]] = {}
    for r in records:
        low, high = spans.get(r.partition, (r.offset, r.offset))
        spans[r.partition] = (min(low, r.offset), max(high, r.offset))
    text = ",".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(spans.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def plan_batch(records: list[SourceRecord]) -> BatchPlan:
    decoded = decode_records(records)
    return BatchPlan(decoded=decoded, link_requests=link_requests(decoded.events), dedup_token=dedup_token(records))


def new_events(plan: BatchPlan, stored: Mapping[str, tuple[int, int]]) -> NewEvents:
    """Split the batch by what ClickHouse already holds, ``stored``: message id → (partition, offset).

    An event stored from the same position is a redelivery: not inserted again, still folded
    (folding skips what the profile already has). One stored from another position is a
    client's retry of a message already received: neither inserted nor folded. Within the
    batch, only the first of a repeated message id counts.
    """
    rows, to_fold, seen = [], [], dict(stored)
    for positioned in plan.decoded.events:
        position = (positioned.partition, positioned.offset)
        where = seen.setdefault(positioned.event.messageId, position)
        if where != position:
            continue
        to_fold.append(positioned)
        if positioned.event.messageId not in stored:
            rows.append(event_row(positioned))
    return NewEvents(rows, to_fold)


def group_by_customer(events: list[PositionedEvent], identity: IdentityDecision) -> dict[str, list[PositionedEvent]]:
    """Each customer's events in Kafka order, anonymous ids resolved to the user they were merged into."""
    by_customer: dict[str, list[PositionedEvent]] = defaultdict(list)
    for positioned in events:
        by_customer[identity.resolve(customer_id_of(positioned))].append(positioned)
    for customer_events in by_customer.values():
        customer_events.sort(key=lambda p: (p.partition, p.offset))
    return dict(by_customer)


def merges_to_apply(
    customers: list[str], identity: IdentityDecision, profiles: Mapping[str, CustomerProfile]
) -> dict[str, list[str]]:
    """Customers with an anonymous profile not yet folded into theirs → all their anonymous ids.

    Decided from the stored profiles, not from this batch's links, so a merge interrupted
    by a crash is completed when the batch comes again.
    """
    pending = {}
    for customer in customers:
        anonymous = identity.anonymous_ids_of(customer)
        if any(a in profiles and profiles[a].merged_into != customer for a in anonymous):
            pending[customer] = anonymous
    return pending


def trigger_of(positioned: PositionedEvent) -> TriggerEvent:
    event = positioned.event
    return TriggerEvent(
        message_id=event.messageId,
        type=event.type,
        event=event.event if isinstance(event, TrackEvent) else None,
        timestamp=event.timestamp,
        properties=getattr(event, "properties", None) or getattr(event, "traits", None) or {},
    )


def fold_batch(
    by_customer: Mapping[str, list[PositionedEvent]],
    current: Mapping[str, CustomerProfile],
    now: datetime,
    histories: Mapping[str, list[PositionedEvent]] | None = None,
    merged: Mapping[str, list[str]] | None = None,
) -> FoldResult:
    """Fold each customer's events into their current profile; one change event per customer.

    ``histories``: all stored events of customers to recompute (a merge to apply), and
    ``merged``: their anonymous ids, whose profiles are marked as merged into them.
    """
    result = FoldResult()
    histories, merged = histories or {}, merged or {}
    for customer_id, events in by_customer.items():
        before = current.get(customer_id)
        folded: Folded | None
        if customer_id in histories:
            folded = recompute(before, customer_id, histories[customer_id], now)
            folded = Folded(folded.profile, folded.changed, events)
        else:
            folded = fold(before, events, now, customer_id=customer_id)
        if folded is None and before is not None:
            # A redelivery of events already folded (the worker died after writing the
            # profile): no new version, but the change is emitted again, because it may never
            # have reached Kafka. Consumers deduplicate by trigger message id.
            result.changes.append(_change(customer_id, before, [], events, now))
            continue
        assert folded is not None
        result.profile_rows.append(profile_row(folded.profile))
        result.changes.append(_change(customer_id, folded.profile, folded.changed, folded.folded, now))
        for anonymous_id in merged.get(customer_id, []):
            result_of_merge = mark_merged(current.get(anonymous_id), customer_id)
            if result_of_merge is not None:
                result.profile_rows.append(profile_row(result_of_merge))
                result.changes.append(_change(anonymous_id, result_of_merge, ["merged_into"], events, now))
    return result


def review_traits(profiles: list[CustomerProfile], now: datetime) -> FoldResult:
    """The timer's step: recompute ``profiles``' traits as of ``now``. Every profile gets a
    new version (so it is not reviewed again until it is stale); a change event goes out
    only for those whose computed traits changed, naming them."""
    result = FoldResult()
    for profile in profiles:
        reviewed = profile.model_copy(update={"computed": compute(profile, now), "version": profile.version + 1})
        result.profile_rows.append(profile_row(reviewed))
        assert reviewed.computed is not None
        changed = changed_traits(profile.computed, reviewed.computed)
        if changed:
            result.changes.append(_change(profile.customer_id, reviewed, changed, [], now))
    return result


def mark_merged(profile: CustomerProfile | None, into: str) -> CustomerProfile | None:
    """A new version of an anonymous profile, marked as merged into ``into`` (None: nothing to mark)."""
    if profile is None or profile.merged_into == into:
        return None
    return profile.model_copy(update={"merged_into": into, "version": profile.version + 1})


def _change(
    customer_id: str, profile: CustomerProfile, changed: list[str], events: list[PositionedEvent], now: datetime
) -> ProfileChanged:
    return ProfileChanged(
        customer_id=customer_id, profile=profile, changed=changed, triggers=[trigger_of(p) for p in events],
        emitted_at=now,
    )  # fmt: skip
