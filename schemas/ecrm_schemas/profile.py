"""The customer profile and the profile-changed event the aggregator emits."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from ecrm_schemas.own_events import EventOrigin


class ComputedTraits(BaseModel):
    """Scores derived from a profile's aggregates as of a moment (formulas: the aggregator's
    ``computed_traits`` module). Empty values mean "not yet" (no order, no NPS answer)."""

    as_of: datetime
    rfm_recency: int | None = None
    rfm_frequency: int | None = None
    rfm_monetary: int | None = None
    rfm_segment: str | None = None
    engagement_score: int = 0
    """0 to 100, activity with time decay."""
    nps_category: Literal["promoter", "passive", "detractor"] | None = None
    nps_trend: Literal["up", "down", "flat"] | None = None
    churn_ratio: float | None = None
    """Idle time over the customer's typical interval between visits."""
    churn_risk: Literal["low", "medium", "high"] | None = None
    lifecycle_stage: Literal["prospect", "new", "active", "at_risk", "churned"] = "prospect"
    loyalty_points: int = 0
    loyalty_tier: str = "bronze"


class CustomerProfile(BaseModel):
    """Everything the pipeline knows about one customer, folded from their events."""

    customer_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    """Identify traits, latest value of each trait wins by event timestamp."""
    traits_updated_at: datetime | None = None
    first_seen: datetime
    last_seen: datetime
    event_count: int = 0
    event_counts: dict[str, int] = Field(default_factory=dict)
    """Events seen, by label: the track event's name, else the event type."""
    page_views: int = 0
    page_views_by_name: dict[str, int] = Field(default_factory=dict)
    """Page views by the page call's ``name`` (pages sent without one are left out)."""
    page_views_by_category: dict[str, int] = Field(default_factory=dict)
    """Page views by the page call's ``category``."""
    screen_views: int = 0
    screen_views_by_name: dict[str, int] = Field(default_factory=dict)
    screen_views_by_category: dict[str, int] = Field(default_factory=dict)
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
    """The NPS answer before the latest (for the trend)."""
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    refunded: Decimal = Decimal(0)
    last_active_at: datetime | None = None
    """The customer's last own activity (views, clicks, orders, opens, answers; not mail we send)."""
    typical_interval_days: float | None = None
    """Smoothed mean of the gaps between the customer's visits; none before a second visit."""
    engagement_raw: float = 0.0
    engagement_at: datetime | None = None
    """The decaying engagement sum and the moment it is as of."""
    computed: ComputedTraits | None = None
    """Computed traits as of the last fold (or timer)."""
    merged_into: str | None = None
    """Set on an anonymous visitor's profile once it was stitched to a known user's profile."""
    version: int = 0
    """Increases with every event folded in and every recomputation (merge, unmerge, timer)."""
    source_partition: int = -1
    source_offset: int = -1
    """Kafka position of the last event folded in."""
    positions: dict[int, int] = Field(default_factory=dict)
    """The last offset folded in, per partition: a redelivered event at or before it is skipped.
    (A stitched customer's events come from the partitions of all their ids.)"""


class TriggerEvent(BaseModel):
    """An event that caused a profile change, as much of it as rules need."""

    message_id: str
    type: str
    event: str | None = None
    """The track event's name; none for other types."""
    timestamp: datetime
    properties: dict[str, Any] = Field(default_factory=dict)
    backfill: bool = False
    """Imported history (:mod:`ecrm_schemas.backfill`): folded into the profile, fires no rule."""
    origin: EventOrigin = EventOrigin.CLIENT
    """Who produced the event, set by the aggregator from the Kafka header only the interaction
    service sets (:mod:`ecrm_schemas.own_events`): its own events fire no rule, change no contact
    state and earn no points. Never taken from the event itself."""


class ProfileChanged(BaseModel):
    """A profile after new events were folded in: the new state, what changed and why."""

    customer_id: str
    profile: CustomerProfile
    changed: list[str]
    """The names of the profile fields whose value changed."""
    previous: dict[str, Any] = Field(default_factory=dict)
    """The value each of ``changed`` had before (``computed.<trait>`` by that name; a field that
    did not exist before is absent), so consumers see a crossing, e.g. churn risk becoming high."""
    triggers: list[TriggerEvent]
    """The events folded in by this change, in order."""
    emitted_at: datetime

    @property
    def backfill(self) -> bool:
        """Imported events are among the causes of this change: what it did to traits is not
        acted on (an imported order and a live page view folded together do not make a live
        crossing; the page view's own event rules still fire)."""
        return any(t.backfill for t in self.triggers)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()
