"""Step 2: fold a customer's new events into their profile (pure).

Folding is idempotent per Kafka position: an event at or before the offset the profile
recorded for its partition was already folded and is skipped, so a redelivered batch never
counts twice. A stitched customer (see :mod:`ecrm_aggregator.identity`) is recomputed from
all their events instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any

from ecrm_aggregator.computed_traits import (
    add_activity,
    add_engagement,
    compute,
    event_weight,
    legacy_slots,
    typical_interval,
)
from ecrm_aggregator.decode import PositionedEvent
from ecrm_aggregator.profile_state import (
    CONTRACT_FIELDS,
    RECENT_MESSAGE_IDS,
    TRAIT_NAMES,
    VIEW_COUNT_KEYS,
    ProfileState,
    Traits,
)
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.events import IdentifyEvent, TrackEvent, event_label, event_properties, view_category, view_name
from ecrm_schemas.profile_paths import computed_path

BOOKKEEPING = frozenset({"version", "source_partition", "source_offset", "positions"})
COMPARED_FIELDS: tuple[str, ...] = tuple(n for n in CONTRACT_FIELDS if n not in BOOKKEEPING and n != "computed")
"""The fields whose change a profile-changed event reports by name."""
_compared = attrgetter(*COMPARED_FIELDS)
_COMPUTED_PATHS = {computed_path(name): name for name in TRAIT_NAMES}
OTHER_VIEWS = "(other)"
"""Where views of names beyond :data:`VIEW_COUNT_KEYS` distinct ones are counted."""
EMAIL_COUNTERS: dict[str, str] = {
    CatalogEvent.EMAIL_SENT: "email_sent",
    CatalogEvent.EMAIL_OPENED: "email_opened",
    CatalogEvent.EMAIL_LINK_CLICKED: "email_clicked",
    CatalogEvent.EMAIL_BOUNCED: "email_bounced",
}


def customer_id_of(positioned: PositionedEvent) -> str:
    """The id an event was sent with (its Kafka key); identity stitching may map it to a user."""
    return positioned.event.customer_key


def folded_positions(profile: ProfileState) -> dict[int, int]:
    """The last folded offset per partition (profiles written before 0004 recorded only one)."""
    if profile.positions or profile.source_partition < 0:
        return profile.positions
    return {profile.source_partition: profile.source_offset}


def already_folded(profile: ProfileState | None, positioned: PositionedEvent) -> bool:
    """Whether ``profile`` has folded the event at this Kafka position (a redelivery)."""
    if profile is None:
        return False
    return positioned.offset <= folded_positions(profile).get(positioned.partition, -1)


def _money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return amount if amount.is_finite() and amount >= 0 else Decimal(0)


@dataclass(frozen=True, slots=True)
class Folded:
    profile: ProfileState
    changed: list[str]
    """Names of the profile fields whose value changed."""
    folded: list[PositionedEvent]
    """The events that were new to the profile, in order."""


def fold(
    profile: ProfileState | None, events: Iterable[PositionedEvent], now: datetime, customer_id: str | None = None
) -> Folded | None:
    """Fold one customer's ``events`` (in Kafka order) into ``profile`` (None: never seen), and
    compute its traits as of ``now``. ``customer_id`` names a new profile (default: the first
    event's key). ``profile`` is not changed.

    Returns None when every event was already folded, i.e. the batch is a redelivery.
    ``changed`` names the profile fields whose value changed, and ``computed.<trait>`` for
    each computed trait that changed.
    """
    fresh = [p for p in events if not already_folded(profile, p)]
    if not fresh:
        return None
    first = fresh[0]
    if profile is not None:
        state = profile.copy()
        state.positions = dict(folded_positions(profile))
    else:
        state = ProfileState(
            customer_id=customer_id or customer_id_of(first),
            first_seen=first.event.timestamp,
            last_seen=first.event.timestamp,
        )
    for positioned in fresh:
        _apply(state, positioned)
    if len(state.recent_message_ids) > RECENT_MESSAGE_IDS:
        del state.recent_message_ids[:-RECENT_MESSAGE_IDS]
    state.computed = compute(state, now)
    return Folded(state, changes_between(profile, state), fresh)


def recompute(previous: ProfileState | None, customer_id: str, events: list[PositionedEvent], now: datetime) -> Folded:
    """Rebuild ``customer_id``'s profile from all its events (after a merge or an unmerge).

    The new profile's version is above ``previous``'s, so it replaces it.
    """
    ordered = sorted(events, key=lambda p: (p.event.timestamp, p.partition, p.offset))
    if not ordered:
        raise ValueError(f"no events to recompute {customer_id!r} from")
    folded = fold(None, ordered, now, customer_id=customer_id)
    assert folded is not None
    state = folded.profile
    own = [p for p in ordered if customer_id_of(p) == customer_id]
    if own:  # the profile's partition is its own events', not those of an anonymous id merged in
        last = max(own, key=lambda p: (p.partition, p.offset))
        state.source_partition, state.source_offset = last.partition, last.offset
    state.version = max(state.version, previous.version + 1 if previous else 0)
    return Folded(state, changes_between(previous, state), folded.folded)


def changes_between(before: ProfileState | None, after: ProfileState) -> list[str]:
    """Profile fields whose value changed, then ``computed.<trait>`` for each changed computed trait."""
    new = _compared(after)
    if before is None:  # everything known is new
        changed = [name for name, value in zip(COMPARED_FIELDS, new, strict=True) if value is not None]
    else:
        old = _compared(before)
        changed = [name for name, a, b in zip(COMPARED_FIELDS, old, new, strict=True) if a != b]
    if after.computed is not None:
        changed += changed_traits(before.computed if before else None, after.computed)
    return changed


def previous_values(before: ProfileState | None, changed: list[str]) -> dict[str, Any]:
    """What each changed scalar field held before (containers such as traits are left out)."""
    if before is None:
        return {}
    previous: dict[str, Any] = {}
    for name in changed:
        if name in _COMPUTED_PATHS:
            if before.computed is not None:
                previous[name] = getattr(before.computed, _COMPUTED_PATHS[name])
            continue
        value = getattr(before, name)
        if not isinstance(value, dict | list):
            previous[name] = value
    return previous


def changed_traits(before: Traits | None, after: Traits) -> list[str]:
    """``computed.<trait>`` for each computed trait whose value differs (the moment aside)."""
    new = after.values()
    old = before.values() if before is not None else (None,) * len(new)
    return [computed_path(name) for name, a, b in zip(TRAIT_NAMES, old, new, strict=True) if a != b]


def _apply(state: ProfileState, positioned: PositionedEvent) -> None:
    event = positioned.event
    label = event_label(event)
    state.version += 1
    state.event_count += 1
    state.event_counts[label] = state.event_counts.get(label, 0) + 1
    state.first_seen = min(state.first_seen, event.timestamp)
    state.last_seen = max(state.last_seen, event.timestamp)
    if not positioned.forwarded:  # the profile's own partition: the timer's and segments' scope
        state.source_partition, state.source_offset = positioned.partition, positioned.offset
    state.positions[positioned.partition] = max(state.positions.get(positioned.partition, -1), positioned.offset)
    state.recent_message_ids.append(event.messageId)
    if event.userId:
        state.user_id = event.userId
    if event.anonymousId and not state.anonymous_id:
        state.anonymous_id = event.anonymousId

    weight = event_weight(label, event_properties(event))
    if weight > 0:  # the customer's own activity (not mail we send)
        if not state.activity_slots and state.last_active_at is not None:  # folded before slots were kept
            state.activity_slots = legacy_slots(state.last_active_at, state.typical_interval_days)
        if add_activity(state.activity_slots, event.timestamp):
            state.typical_interval_days = typical_interval(state.activity_slots)
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
        _count_view(state.page_views_by_name, view_name(event))
        _count_view(state.page_views_by_category, view_category(event))
    elif event.type == "screen":
        state.screen_views += 1
        _count_view(state.screen_views_by_name, view_name(event))
        _count_view(state.screen_views_by_category, view_category(event))
    elif isinstance(event, TrackEvent):
        _apply_track(state, event)


def _count_view(counts: dict[str, int], key: str | None) -> None:
    if key is None:
        return
    if key not in counts and len(counts) >= VIEW_COUNT_KEYS:
        key = OTHER_VIEWS
    counts[key] = counts.get(key, 0) + 1


def _apply_track(state: ProfileState, event: TrackEvent) -> None:
    props = event.properties
    if event.event == CatalogEvent.ORDER_COMPLETED:
        state.orders += 1
        state.revenue += _money(props.get("revenue", props.get("total")))
        state.first_order_at = min(state.first_order_at or event.timestamp, event.timestamp)
        state.last_order_at = max(state.last_order_at or event.timestamp, event.timestamp)
    elif event.event == CatalogEvent.ORDER_REFUNDED:
        state.refunded += _money(props.get("total"))
    elif event.event == CatalogEvent.LOYALTY_POINTS_AWARDED:  # the ledger's balance (it owns loyalty), latest wins
        points, tier = int(props["balance"]), str(props["tier"])
        if state.computed is None:
            state.computed = Traits(event.timestamp, loyalty_points=points, loyalty_tier=tier)
        else:
            state.computed = replace(state.computed, loyalty_points=points, loyalty_tier=tier)
    elif event.event in EMAIL_COUNTERS:
        field = EMAIL_COUNTERS[event.event]
        setattr(state, field, getattr(state, field) + 1)
    elif event.event in (CatalogEvent.SURVEY_ANSWERED, CatalogEvent.NPS_ANSWERED):
        state.surveys_answered += 1
        if event.event == CatalogEvent.NPS_ANSWERED and (state.nps_at is None or event.timestamp >= state.nps_at):
            state.nps_previous = state.nps_latest
            state.nps_latest = int(props["score"])
            state.nps_at = event.timestamp
        elif event.event == CatalogEvent.NPS_ANSWERED and state.nps_previous is None:
            state.nps_previous = int(props["score"])  # an older answer arriving late
