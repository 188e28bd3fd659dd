"""Step 2: fold a customer's new events into their profile (pure).

Folding is idempotent per Kafka position: an event at or before the profile's recorded
``(source_partition, source_offset)`` was already folded and is skipped, so a redelivered
batch never counts twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ecrm_aggregator.computed_traits import add_engagement, compute, event_weight, typical_interval_after
from ecrm_aggregator.decode import PositionedEvent
from ecrm_schemas.events import IdentifyEvent, TrackEvent, event_label
from ecrm_schemas.profile import ComputedTraits, CustomerProfile

BOOKKEEPING = frozenset({"version", "source_partition", "source_offset"})
EMAIL_COUNTERS = {
    "Email Sent": "email_sent",
    "Email Opened": "email_opened",
    "Email Link Clicked": "email_clicked",
    "Email Bounced": "email_bounced",
}


def customer_id_of(positioned: PositionedEvent) -> str:
    """The profile an event belongs to (identity stitching refines this)."""
    return positioned.event.customer_key


def _already_folded(profile: CustomerProfile, positioned: PositionedEvent) -> bool:
    return positioned.partition == profile.source_partition and positioned.offset <= profile.source_offset


def _money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return amount if amount.is_finite() and amount >= 0 else Decimal(0)


@dataclass(frozen=True, slots=True)
class Folded:
    profile: CustomerProfile
    changed: list[str]
    """Names of the profile fields whose value changed."""
    folded: list[PositionedEvent]
    """The events that were new to the profile, in order."""


def fold(profile: CustomerProfile | None, events: Iterable[PositionedEvent], now: datetime) -> Folded | None:
    """Fold one customer's ``events`` (in Kafka order) into ``profile`` (None: never seen), and
    compute its traits as of ``now``.

    Returns None when every event was already folded, i.e. the batch is a redelivery.
    ``changed`` names the profile fields whose value changed, and ``computed.<trait>`` for
    each computed trait that changed.
    """
    fresh = [p for p in events if profile is None or not _already_folded(profile, p)]
    if not fresh:
        return None
    first = fresh[0]
    before = profile.model_dump() if profile else {}
    state = (
        profile.model_copy(deep=True)
        if profile
        else CustomerProfile(
            customer_id=customer_id_of(first), first_seen=first.event.timestamp, last_seen=first.event.timestamp
        )
    )
    for positioned in fresh:
        _apply(state, positioned)
    state.computed = compute(state, now)
    after = state.model_dump()
    changed = [
        name for name in after if name not in BOOKKEEPING and name != "computed" and before.get(name) != after[name]
    ]
    changed += changed_traits(profile.computed if profile else None, state.computed)
    return Folded(state, changed, fresh)


def changed_traits(before: ComputedTraits | None, after: ComputedTraits) -> list[str]:
    """``computed.<trait>`` for each computed trait whose value differs (the moment aside)."""
    old = before.model_dump(exclude={"as_of"}) if before else {}
    return [f"computed.{name}" for name, value in after.model_dump(exclude={"as_of"}).items() if old.get(name) != value]


def _apply(state: CustomerProfile, positioned: PositionedEvent) -> None:
    event = positioned.event
    label = event_label(event)
    state.version += 1
    state.event_count += 1
    state.event_counts[label] = state.event_counts.get(label, 0) + 1
    state.first_seen = min(state.first_seen, event.timestamp)
    state.last_seen = max(state.last_seen, event.timestamp)
    state.source_partition, state.source_offset = positioned.partition, positioned.offset
    if event.userId:
        state.user_id = event.userId
    if event.anonymousId and not state.anonymous_id:
        state.anonymous_id = event.anonymousId

    properties = getattr(event, "properties", None)
    weight = event_weight(label, properties)
    if weight > 0:  # the customer's own activity (not mail we send)
        state.typical_interval_days = typical_interval_after(
            state.typical_interval_days, state.last_active_at, event.timestamp
        )
        state.last_active_at = max(state.last_active_at or event.timestamp, event.timestamp)
        state.engagement_raw, state.engagement_at = add_engagement(
            state.engagement_raw, state.engagement_at, weight, event.timestamp
        )

    if isinstance(event, IdentifyEvent):
        if state.traits_updated_at is None or event.timestamp >= state.traits_updated_at:
            state.traits = {**state.traits, **event.traits}
            state.traits_updated_at = event.timestamp
        else:  # an older identify arriving late only fills traits we did not know
            state.traits = {**event.traits, **state.traits}
        email = state.traits.get("email")
        state.email = email if isinstance(email, str) and email else state.email
    elif event.type == "page":
        state.page_views += 1
    elif isinstance(event, TrackEvent):
        _apply_track(state, event)


def _apply_track(state: CustomerProfile, event: TrackEvent) -> None:
    props = event.properties
    if event.event == "Order Completed":
        state.orders += 1
        state.revenue += _money(props.get("revenue", props.get("total")))
        state.first_order_at = min(state.first_order_at or event.timestamp, event.timestamp)
        state.last_order_at = max(state.last_order_at or event.timestamp, event.timestamp)
    elif event.event == "Order Refunded":
        state.refunded += _money(props.get("total"))
    elif event.event in EMAIL_COUNTERS:
        field = EMAIL_COUNTERS[event.event]
        setattr(state, field, getattr(state, field) + 1)
    elif event.event in ("Survey Answered", "NPS Answered"):
        state.surveys_answered += 1
        if event.event == "NPS Answered" and (state.nps_at is None or event.timestamp >= state.nps_at):
            state.nps_previous = state.nps_latest
            state.nps_latest = int(props["score"])
            state.nps_at = event.timestamp
        elif event.event == "NPS Answered" and state.nps_previous is None:
            state.nps_previous = int(props["score"])  # an older answer arriving late
