"""The aggregator's chain of steps, in one place.

    records ─▶ decode_records ─▶ [drop suppressed identities] ─▶ plan_batch
      [links and profiles of the batch's ids] ─▶ identity.decide
      [stored positions, only for partitions not yet settled] ─▶ new_events ─▶ [insert events]
      [insert links, merge log] ─▶ group_by_customer ─▶ merges_to_apply ─▶ [their stored events]
      fold_batch ─▶ [insert profiles]
      segment_sql.membership_query ─▶ [evaluate] + [stored membership] ─▶ segmentation.membership_changes
      dead letters, ProfileChanged, segment changes ─▶ [produce] ─▶ [insert membership] ─▶ [commit offsets]

    timer: [stale profiles] ─▶ review_traits ─▶ [insert, produce]; then segments as above over
           every customer of the worker's partitions

Bracketed steps are I/O done by :mod:`ecrm_aggregator.batch_writer`; everything here is
pure and unit-tested without a broker or ClickHouse.

Exactly once, without looking every message id up: events are inserted before the profiles
of the same batch, so an event its customer's profile has folded (by Kafka position) is
stored, and a message id among the profile's recent ones is a client's retry. Only after a
restart or a rebalance can a batch have been stored without its profiles (the worker died
between the two inserts); until a partition's records follow on from what this worker
processed itself, its new events are looked up in ClickHouse first.
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
from ecrm_aggregator.profile_folding import (
    Folded,
    already_folded,
    changed_traits,
    customer_id_of,
    fold,
    previous_values,
    recompute,
)
from ecrm_aggregator.profile_state import Change, ProfileState, Trigger
from ecrm_aggregator.rows import event_row, profile_row
from ecrm_aggregator.segmentation import MembershipUpdate
from ecrm_schemas.backfill import is_backfill
from ecrm_schemas.events import Event, TrackEvent, event_properties, event_traits
from ecrm_schemas.suppressions import SuppressionList


@dataclass(slots=True)
class BatchPlan:
    """What a batch of records becomes before anything is read from ClickHouse."""

    decoded: Decoded
    link_requests: list[LinkRequest]
    dedup_token: str
    """Deterministic for the same records, so a redelivered batch is stored once."""
    spans: dict[int, tuple[int, int]]
    """The first and last offset read from each partition, valid records or not."""

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
    """Events to fold: all but client retries (the fold itself skips what a profile already has)."""
    forward: list[PositionedEvent] = field(default_factory=list)
    """Events to forward to their user's partition on the stitched topic."""
    settled: set[int] = field(default_factory=set)
    """Partitions looked up whose last event turned out new: from here on, nothing of theirs is stored yet."""


@dataclass(slots=True)
class FoldResult:
    profiles: list[ProfileState] = field(default_factory=list)
    """The new versions to write."""
    changes: list[Change] = field(default_factory=list)
    membership: MembershipUpdate = field(default_factory=MembershipUpdate)
    forwards: list[tuple[str, int, PositionedEvent]] = field(default_factory=list)
    """(user id, partition, event) to produce on the stitched topic."""

    @property
    def profile_rows(self) -> list[list[Any]]:
        return [profile_row(profile) for profile in self.profiles]


def offset_spans(records: list[SourceRecord]) -> dict[int, tuple[int, int]]:
    """The first and last offset of each partition of the events topic among ``records``."""
    spans: dict[int, tuple[int, int]] = {}
    for r in records:
        if r.origin is None:
            low, high = spans.get(r.partition, (r.offset, r.offset))
            spans[r.partition] = (min(low, r.offset), max(high, r.offset))
    return spans


def dedup_token(records: list[SourceRecord]) -> str:
    """Deterministic for the same records of both topics (stitched ones as ``s<partition>``)."""
    spans: dict[str, tuple[int, int]] = {}
    for r in records:
        name = str(r.partition) if r.origin is None else f"s{r.partition}"
        low, high = spans.get(name, (r.offset, r.offset))
        spans[name] = (min(low, r.offset), max(high, r.offset))
    text = ",".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(spans.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def plan_batch(records: list[SourceRecord], suppressions: SuppressionList | None = None) -> BatchPlan:
    """Decode a batch; events naming a suppressed (erased) identity are dropped here, so an
    event already on its way when its customer was erased is not stored again."""
    decoded = decode_records(records)
    if suppressions is not None and len(suppressions):
        kept = [p for p in decoded.events if not suppressions.matches(*identities_of(p.event))]
        decoded.suppressed, decoded.events = len(decoded.events) - len(kept), kept
    local = [p for p in decoded.events if not p.forwarded]
    return BatchPlan(decoded, link_requests(local), dedup_token(records), offset_spans(records))


def identities_of(event: Event) -> tuple[str | None, ...]:
    """Every id an event names: its user and anonymous ids, and an alias's previous id."""
    return event.userId, event.anonymousId, getattr(event, "previousId", None)


def to_look_up(
    plan: BatchPlan, unsettled: set[int], identity: IdentityDecision, profiles: Mapping[str, ProfileState]
) -> tuple[list[str], list[str]]:
    """The keys and message ids to look up in the events table: events of ``unsettled``
    partitions that no profile has folded yet."""  # fmt: skip
    keys, ids = set(), []
    for positioned in plan.decoded.events:
        if positioned.partition in unsettled and not positioned.forwarded:
            key = customer_id_of(positioned)
            if not already_folded(profiles.get(identity.resolve(key)), positioned):
                keys.add(key)
                ids.append(positioned.event.messageId)
    return sorted(keys), ids


def new_events(
    plan: BatchPlan,
    identity: IdentityDecision,
    profiles: Mapping[str, ProfileState],
    stored: Mapping[str, tuple[int, int]] | None = None,
    unsettled: set[int] | None = None,
    forwarding: bool = True,
) -> NewEvents:
    """Which of the batch's events to insert, which to fold here and which to forward.

    ``profiles``: the current profiles of the batch's customers. ``stored``: message id →
    (partition, offset) of events of ``unsettled`` partitions found in ClickHouse.

    * An event its customer's profile has folded is stored: not inserted, not folded again.
    * A message id the customer's profile holds among its recent ones, or found stored at
      another position, or repeated in the batch, is a client's retry: neither inserted nor
      folded.
    * An event found stored at its own position was written by a batch that died before its
      profiles: folded, not inserted again.
    * An event of an anonymous id merged into a user whose events arrive on another partition
      is stored here and forwarded there (``forwarding``; without it, as in tools and tests
      that run no Kafka, it is folded here). A forwarded event coming in is only folded, and
      only while its id is still merged: an unmerge recomputed the profile from the events.
    """
    stored, unsettled = stored or {}, unsettled or set()
    rows: list[list[Any]] = []
    to_fold: list[PositionedEvent] = []
    forward: list[PositionedEvent] = []
    seen: dict[str, tuple[int, int]] = {}
    recent: dict[str, frozenset[str]] = {}
    for positioned in plan.decoded.events:
        message_id, position = positioned.event.messageId, (positioned.partition, positioned.offset)
        key = customer_id_of(positioned)
        customer = identity.resolve(key)
        if positioned.forwarded and customer == key:
            continue
        if seen.setdefault(message_id, position) != position:
            continue
        home = identity.home_partition(key, positioned.partition) if forwarding else positioned.partition
        here = positioned.forwarded or home == positioned.partition
        profile = profiles.get(customer)
        if already_folded(profile, positioned):
            if here:
                to_fold.append(positioned)  # the fold skips it; kept so the change names its trigger again
            continue
        if customer not in recent:
            ids = set(profile.recent_message_ids) if profile else set()
            if key != customer and key in profiles:
                ids |= set(profiles[key].recent_message_ids)
            recent[customer] = frozenset(ids)
        if message_id in recent[customer]:
            continue
        where = stored.get(message_id)
        if where is not None and where != position:
            continue
        (to_fold if here else forward).append(positioned)
        if where is None and not positioned.forwarded:
            rows.append(event_row(positioned))
    # A partition is settled once its last event here is neither stored nor folded: whatever a
    # dead batch wrote ends before it.
    last: dict[int, PositionedEvent] = {}
    for positioned in plan.decoded.events:
        if positioned.partition in unsettled and not positioned.forwarded:
            last[positioned.partition] = positioned
    settled = {
        partition for partition, tail in last.items()
        if tail.event.messageId not in stored
        and not already_folded(profiles.get(identity.resolve(customer_id_of(tail))), tail)
    }  # fmt: skip
    return NewEvents(rows, to_fold, forward, settled)


def group_by_customer(events: list[PositionedEvent], identity: IdentityDecision) -> dict[str, list[PositionedEvent]]:
    """Each customer's events in Kafka order, anonymous ids resolved to the user they were merged into."""
    by_customer: dict[str, list[PositionedEvent]] = defaultdict(list)
    for positioned in events:
        by_customer[identity.resolve(customer_id_of(positioned))].append(positioned)
    for customer_events in by_customer.values():
        customer_events.sort(key=lambda p: (p.partition, p.offset))
    return dict(by_customer)


def merges_to_apply(
    customers: list[str], identity: IdentityDecision, profiles: Mapping[str, ProfileState]
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


def trigger_of(positioned: PositionedEvent) -> Trigger:
    event = positioned.event
    return Trigger(
        message_id=event.messageId,
        type=event.type,
        event=event.event if isinstance(event, TrackEvent) else None,
        timestamp=event.timestamp,
        properties=event_properties(event) or event_traits(event) or {},
        backfill=is_backfill(event),
        origin=positioned.event_origin,
    )


def fold_batch(
    by_customer: Mapping[str, list[PositionedEvent]],
    current: Mapping[str, ProfileState],
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
        result.profiles.append(folded.profile)
        result.changes.append(_change(customer_id, folded.profile, folded.changed, folded.folded, now, before))
        for anonymous_id in merged.get(customer_id, []):
            result_of_merge = mark_merged(current.get(anonymous_id), customer_id)
            if result_of_merge is not None:
                result.profiles.append(result_of_merge)
                previous = current.get(anonymous_id)
                result.changes.append(_change(anonymous_id, result_of_merge, ["merged_into"], events, now, previous))
    return result


def review_traits(profiles: list[ProfileState], now: datetime) -> FoldResult:
    """The timer's step: recompute ``profiles``' traits as of ``now``. Every profile gets a
    new version (so it is not reviewed again until it is stale); a change event goes out
    only for those whose computed traits changed, naming them."""
    result = FoldResult()
    for profile in profiles:
        reviewed = profile.copy()
        reviewed.computed, reviewed.version = compute(profile, now), profile.version + 1
        result.profiles.append(reviewed)
        changed = changed_traits(profile.computed, reviewed.computed)
        if changed:
            result.changes.append(_change(profile.customer_id, reviewed, changed, [], now, profile))
    return result


def mark_merged(profile: ProfileState | None, into: str) -> ProfileState | None:
    """A new version of an anonymous profile, marked as merged into ``into`` (None: nothing to mark)."""
    if profile is None or profile.merged_into == into:
        return None
    marked = profile.copy()
    marked.merged_into, marked.version = into, profile.version + 1
    return marked


def _change(
    customer_id: str,
    profile: ProfileState,
    changed: list[str],
    events: list[PositionedEvent],
    now: datetime,
    before: ProfileState | None = None,
) -> Change:
    return Change(customer_id, profile, changed, [trigger_of(p) for p in events], now, previous_values(before, changed))
