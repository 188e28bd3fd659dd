"""The aggregator's working copy of a profile, and the profile-changed event it emits (pure data).

:class:`~ecrm_schemas.profile.CustomerProfile` is the contract other services read. Folding
touches a dozen fields per event, and pydantic's attribute and copy machinery cost more than
the fold itself, so the aggregator folds into :class:`ProfileState`, a slotted dataclass with
the same fields, and serialises it straight to the contract's JSON with orjson. A drift test
keeps the two field lists equal, and a contract test validates the JSON as
:class:`~ecrm_schemas.profile.ProfileChanged`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

import orjson

from ecrm_schemas.own_events import EventOrigin
from ecrm_schemas.profile import CustomerProfile

VIEW_COUNTS = ("page_views_by_name", "page_views_by_category", "screen_views_by_name", "screen_views_by_category")
"""The profile's counts of page and screen views by name and by category (name → count)."""
VIEW_COUNT_KEYS = 200
"""How many distinct names (or categories) each of them keeps; later ones count under ``(other)``."""

RECENT_MESSAGE_IDS = 64
"""How many of a customer's latest message ids the profile keeps, to recognise a client's retry."""


@dataclass(slots=True)
class Traits:
    """:class:`~ecrm_schemas.profile.ComputedTraits` as plain data (formulas: ``computed_traits``)."""

    as_of: datetime
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    rfm_segment: str | None = None
    engagement_score: int = 0
    nps_category: str | None = None
    nps_trend: str | None = None
    churn_ratio: float | None = None
    churn_risk: str | None = None
    lifecycle_stage: str = "prospect"
    loyalty_points: int = 0
    loyalty_tier: str = "bronze"

    def values(self) -> tuple[Any, ...]:
        """Every trait but ``as_of``, in field order (what decides whether traits changed)."""
        return _trait_values(self)  # type: ignore[no-any-return]


TRAIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Traits) if f.name != "as_of")
TRAIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Traits))
# attrgetter reads many attributes in one call: folding compares and copies dozens per customer.
_trait_values = attrgetter(*TRAIT_NAMES)
_trait_fields = attrgetter(*TRAIT_FIELDS)


@dataclass(slots=True)
class ProfileState:
    """Everything known about one customer; the fields of ``CustomerProfile`` plus
    :data:`INTERNAL_FIELDS` (kept in ClickHouse, not part of the contract)."""

    customer_id: str
    first_seen: datetime
    last_seen: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    traits_updated_at: datetime | None = None
    event_count: int = 0
    event_counts: dict[str, int] = field(default_factory=dict)
    page_views: int = 0
    page_views_by_name: dict[str, int] = field(default_factory=dict)
    page_views_by_category: dict[str, int] = field(default_factory=dict)
    screen_views: int = 0
    screen_views_by_name: dict[str, int] = field(default_factory=dict)
    screen_views_by_category: dict[str, int] = field(default_factory=dict)
    orders: int = 0
    revenue: Decimal = Decimal(0)
    email_sent: int = 0
    email_opened: int = 0
    email_clicked: int = 0
    email_bounced: int = 0
    surveys_answered: int = 0
    nps_latest: int | None = None
    nps_at: datetime | None = None
    nps_previous: int | None = None
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    refunded: Decimal = Decimal(0)
    last_active_at: datetime | None = None
    typical_interval_days: float | None = None
    engagement_raw: float = 0.0
    engagement_at: datetime | None = None
    computed: Traits | None = None
    merged_into: str | None = None
    version: int = 0
    source_partition: int = -1
    source_offset: int = -1
    positions: dict[int, int] = field(default_factory=dict)
    recent_message_ids: list[str] = field(default_factory=list)
    """The latest message ids folded in (at most :data:`RECENT_MESSAGE_IDS`), oldest first."""
    activity_slots: list[int] = field(default_factory=list)
    """The half-hour slots (epoch seconds) of the customer's latest activity, ascending: what
    ``typical_interval_days`` is computed from (see ``computed_traits``)."""

    def copy(self) -> ProfileState:
        """A copy whose containers can be changed without touching this one (traits are replaced, not mutated)."""
        twin = ProfileState(*_state_fields(self))
        twin.event_counts = dict(self.event_counts)
        for name in VIEW_COUNTS:
            setattr(twin, name, dict(getattr(self, name)))
        twin.positions = dict(self.positions)
        twin.recent_message_ids = list(self.recent_message_ids)
        twin.activity_slots = list(self.activity_slots)
        return twin

    def contract(self) -> dict[str, Any]:
        """The profile in the shape of ``CustomerProfile`` (for orjson; Decimals need ``default=str``)."""
        out = dict(zip(CONTRACT_FIELDS, _contract_fields(self), strict=True))
        computed = self.computed
        out["computed"] = None if computed is None else dict(zip(TRAIT_FIELDS, _trait_fields(computed), strict=True))
        return out

    def to_model(self) -> CustomerProfile:
        """The validated contract model (tools and tests; the hot path serialises :meth:`contract`)."""
        return CustomerProfile.model_validate_json(dumps(self.contract()))

    @classmethod
    def from_model(
        cls,
        profile: CustomerProfile,
        recent_message_ids: list[str] | None = None,
        activity_slots: list[int] | None = None,
    ) -> ProfileState:
        values = {name: getattr(profile, name) for name in CONTRACT_FIELDS if name != "computed"}
        state = cls(
            **values, recent_message_ids=list(recent_message_ids or []), activity_slots=list(activity_slots or [])
        )
        state.traits, state.event_counts, state.positions = (
            dict(profile.traits),
            dict(profile.event_counts),
            dict(profile.positions),
        )
        for name in VIEW_COUNTS:
            setattr(state, name, dict(getattr(profile, name)))
        if profile.computed is not None:
            state.computed = Traits(**profile.computed.model_dump())
        return state


STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ProfileState))
INTERNAL_FIELDS = ("recent_message_ids", "activity_slots")
"""Kept in ClickHouse for folding, not part of the contract."""
CONTRACT_FIELDS: tuple[str, ...] = tuple(name for name in STATE_FIELDS if name not in INTERNAL_FIELDS)
_state_fields = attrgetter(*STATE_FIELDS)
_contract_fields = attrgetter(*CONTRACT_FIELDS)

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """orjson with the contract's conventions: Decimals as strings, UTC as ``Z``, int keys as strings."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


@dataclass(frozen=True, slots=True)
class Trigger:
    """An event that caused a profile change (the contract's ``TriggerEvent``)."""

    message_id: str
    type: str
    event: str | None
    timestamp: datetime
    properties: dict[str, Any]
    backfill: bool = False
    """Imported history (:mod:`ecrm_schemas.backfill`)."""
    origin: EventOrigin = EventOrigin.CLIENT
    """Who produced it (:mod:`ecrm_schemas.own_events`): from the Kafka header, never the event's JSON."""


@dataclass(slots=True)
class Change:
    """One ``ProfileChanged`` event: the profile after the fold, what changed and why."""

    customer_id: str
    profile: ProfileState
    changed: list[str]
    triggers: list[Trigger]
    emitted_at: datetime
    previous: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The ``ProfileChanged`` JSON."""
        triggers = [
            {"message_id": t.message_id, "type": t.type, "event": t.event, "timestamp": t.timestamp,
             "properties": t.properties, "backfill": t.backfill, "origin": t.origin}
            for t in self.triggers
        ]  # fmt: skip
        return dumps(
            {
                "customer_id": self.customer_id,
                "profile": self.profile.contract(),
                "changed": self.changed,
                "previous": self.previous,
                "triggers": triggers,
                "emitted_at": self.emitted_at,
            }
        )
