"""Step 2: fold a customer's new events into their profile (pure).

Folding is idempotent per Kafka position: an event at or before the profile's recorded
``(source_partition, source_offset)`` was already folded and is skipped, so a redelivered
batch never counts twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ecrm_aggregator.decode import PositionedEvent
from ecrm_schemas.events import IdentifyEvent, TrackEvent, event_label
from ecrm_schemas.profile import CustomerProfile

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


def fold(profile: CustomerProfile | None, events: Iterable[PositionedEvent]) -> Folded | None:
    """Fold one customer's ``events`` (in Kafka order) into ``profile`` (None: never seen).

    Returns None when every event was already folded, i.e. the batch is a redelivery.
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
    after = state.model_dump()
    changed = [name for name in after if name not in BOOKKEEPING and before.get(name) != after[name]]
    return Folded(state, changed, fresh)


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
    elif event.event in EMAIL_COUNTERS:
        field = EMAIL_COUNTERS[event.event]
        setattr(state, field, getattr(state, field) + 1)
    elif event.event in ("Survey Answered", "NPS Answered"):
        state.surveys_answered += 1
        if event.event == "NPS Answered" and (state.nps_at is None or event.timestamp >= state.nps_at):
            state.nps_latest = int(props["score"])
            state.nps_at = event.timestamp
