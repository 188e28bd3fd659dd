"""Computed traits: the scores marketers segment on, as pure formulas of a customer's aggregates.

Every function takes the aggregates it needs and a reference time ``now`` and returns a
value; nothing here reads a clock or a database. The aggregator evaluates them when events
arrive and on timers (a customer becomes "at risk" because time passed), with ``now`` set
by the caller. The parameters live in :class:`TraitPolicy`, documented next to each.

RFM (recency, frequency, monetary), 1 to 5 each
    Recency: days since the last order against ``recency_days`` (≤ 30 → 5, ≤ 60 → 4,
    ≤ 120 → 3, ≤ 240 → 2, older → 1). Frequency: orders against ``frequency_orders``
    (1 → 1, 2 → 2, 3-4 → 3, 5-9 → 4, ≥ 10 → 5). Monetary: net revenue against
    ``monetary`` (< 50 → 1, < 150 → 2, < 500 → 3, < 1,500 → 4, more → 5). Fixed
    thresholds, not quintiles of the base, so a customer's score never moves because
    other customers bought. A customer with no order has no RFM score.
    Segment: the classic R x F grid, with F the rounded mean of frequency and monetary
    (see :data:`RFM_SEGMENTS`).

Engagement, 0 to 100
    Each activity adds a weight (:data:`ENGAGEMENT_WEIGHTS`: page view 1, product viewed
    2, added to cart 3, order 10, email opened 1 (a machine open 0), email clicked 3,
    survey answered 2); the sum decays with a half-life of ``engagement_half_life_days``
    (14): ``raw(t) = raw(t0) · 2^(-(t - t0) / half_life)``. The score is
    ``round(100 · (1 - e^(-raw / engagement_scale)))``: 20 points of fresh activity give 63.

NPS
    Category: 9-10 promoter, 7-8 passive, 0-6 detractor. Trend: the latest answer against
    the previous one: ``up``, ``down`` or ``flat``; none before a second answer.

Churn risk
    The customer's activity is kept as the set of half-hour slots (``session_gap_hours``) they
    were active in, the latest :data:`ACTIVITY_SLOTS` of them; slots next to each other are one
    visit. The typical interval between visits is an exponentially weighted mean of the gaps
    between the starts of consecutive visits, oldest first (``typical = alpha · gap + (1 - alpha)
    · typical``, alpha = ``interval_smoothing`` 0.3), and ``default_interval_days`` (30) until a
    first gap is seen. Being a function of the set of slots, it does not depend on the order the
    events arrive in (a batch sent newest first, a history import, a late event).
    ``ratio = idle / typical``; low below ``churn_medium_ratio`` (2), high from
    ``churn_high_ratio`` (4), medium between.

Lifecycle stage
    ``churned`` when idle for ``churned_after_days`` (180); else ``prospect`` with no order;
    ``at_risk`` when churn risk is high; ``new`` when the first order is less than
    ``new_customer_days`` (30) old; else ``active``.

Loyalty
    Not computed here: the interaction service's ledger owns the balance (purchases, refunds,
    engagement and rule points, redemptions, under the loyalty program marketers edit). Each
    ledger change is published as a ``Loyalty Points Awarded`` event carrying the balance and
    tier; folding keeps the latest one's (:mod:`ecrm_aggregator.profile_folding`), and each
    computation carries them over, so ``computed.loyalty_points`` is the ledger's number.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from ecrm_aggregator.profile_state import ProfileState, Traits
from ecrm_schemas.catalog import CatalogEvent

DAY = timedelta(days=1)

NpsCategory = Literal["promoter", "passive", "detractor"]
Trend = Literal["up", "down", "flat"]
ChurnLevel = Literal["low", "medium", "high"]
LifecycleStage = Literal["prospect", "new", "active", "at_risk", "churned"]

ENGAGEMENT_WEIGHTS: dict[str, float] = {
    "page": 1.0,
    "screen": 1.0,
    CatalogEvent.PRODUCT_VIEWED: 2.0,
    CatalogEvent.PRODUCT_ADDED: 3.0,
    CatalogEvent.ORDER_COMPLETED: 10.0,
    CatalogEvent.EMAIL_OPENED: 1.0,
    CatalogEvent.EMAIL_LINK_CLICKED: 3.0,
    CatalogEvent.SURVEY_ANSWERED: 2.0,
    CatalogEvent.NPS_ANSWERED: 2.0,
}
"""Points one activity adds to the engagement sum, by event label (track name, else type)."""

RFM_SEGMENTS: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    # name, recency scores, frequency-monetary scores; the first match wins.
    ("champions", (5,), (4, 5)),
    ("loyal", (3, 4), (4, 5)),
    ("cannot_lose_them", (1, 2), (5,)),
    ("at_risk", (1, 2), (3, 4)),
    ("potential_loyalist", (4, 5), (2, 3)),
    ("new_customers", (5,), (1,)),
    ("promising", (4,), (1,)),
    ("need_attention", (3,), (3,)),
    ("about_to_sleep", (3,), (1, 2)),
    ("hibernating", (2,), (1, 2)),
    ("lost", (1,), (1, 2)),
)
"""The R x FM grid: every (recency, frequency-monetary) pair of 1-5 has exactly one segment."""


@dataclass(frozen=True, slots=True)
class TraitPolicy:
    """The parameters of the formulas (see the module docstring); the defaults suit a web shop."""

    recency_days: tuple[int, int, int, int] = (30, 60, 120, 240)
    frequency_orders: tuple[int, int, int, int] = (2, 3, 5, 10)
    monetary: tuple[Decimal, Decimal, Decimal, Decimal] = (Decimal(50), Decimal(150), Decimal(500), Decimal(1500))
    engagement_half_life_days: float = 14.0
    engagement_scale: float = 20.0
    session_gap_hours: float = 0.5
    interval_smoothing: float = 0.3
    default_interval_days: float = 30.0
    churn_medium_ratio: float = 2.0
    churn_high_ratio: float = 4.0
    churned_after_days: float = 180.0
    new_customer_days: float = 30.0


DEFAULT_POLICY = TraitPolicy()
FIRST_TIER = "bronze"
"""A customer's tier until the ledger reports one (the default loyalty program's first)."""


def _days(delta: timedelta) -> float:
    return delta / DAY


# --- RFM ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rfm:
    recency: int
    frequency: int
    monetary: int
    segment: str


def _ascending_score(value: float | Decimal, thresholds: tuple[Any, ...]) -> int:
    """1 + how many thresholds ``value`` reaches (for "more is better" measures)."""
    return 1 + sum(value >= threshold for threshold in thresholds)


def recency_score(days_since_last_order: float, policy: TraitPolicy = DEFAULT_POLICY) -> int:
    return 5 - sum(days_since_last_order > limit for limit in policy.recency_days)


def rfm_segment(recency: int, frequency: int, monetary: int) -> str:
    """The segment of an RFM score (:data:`RFM_SEGMENTS`), FM being the rounded-half-up mean."""
    fm = math.floor((frequency + monetary) / 2 + 0.5)
    for name, recencies, fms in RFM_SEGMENTS:
        if recency in recencies and fm in fms:
            return name
    raise ValueError(f"no RFM segment for R={recency} FM={fm}")


def rfm(
    last_order_at: datetime | None, orders: int, revenue: Decimal, now: datetime, policy: TraitPolicy = DEFAULT_POLICY
) -> Rfm | None:
    """The customer's RFM scores and segment; None before a first order."""
    if orders <= 0 or last_order_at is None:
        return None
    recency = recency_score(max(0.0, _days(now - last_order_at)), policy)
    frequency = _ascending_score(orders, policy.frequency_orders)
    monetary = _ascending_score(max(revenue, Decimal(0)), policy.monetary)
    return Rfm(recency, frequency, monetary, rfm_segment(recency, frequency, monetary))


# --- engagement ---------------------------------------------------------------------------


def event_weight(label: str, properties: dict[str, Any] | None = None) -> float:
    """What one event adds to engagement; a machine open (privacy proxy, prefetch) adds nothing."""
    if label == CatalogEvent.EMAIL_OPENED and (properties or {}).get("machine_open"):
        return 0.0
    return ENGAGEMENT_WEIGHTS.get(label, 0.0)


def decayed(raw: float, since: datetime, now: datetime, policy: TraitPolicy = DEFAULT_POLICY) -> float:
    """``raw`` as of ``since``, decayed to ``now`` (never grows when ``now`` is earlier)."""
    elapsed = max(0.0, _days(now - since))
    return raw * 2 ** (-elapsed / policy.engagement_half_life_days)


def add_engagement(
    raw: float, raw_at: datetime | None, weight: float, event_at: datetime, policy: TraitPolicy = DEFAULT_POLICY
) -> tuple[float, datetime]:
    """The engagement sum after one event: ``(raw, as_of)``.

    Order-insensitive: an event older than ``raw_at`` adds its weight decayed to ``raw_at``,
    so folding the same events in any order gives the same sum.
    """
    if raw_at is None:
        return weight, event_at
    if event_at >= raw_at:
        return decayed(raw, raw_at, event_at, policy) + weight, event_at
    return raw + decayed(weight, event_at, raw_at, policy), raw_at


def engagement_score(raw: float, raw_at: datetime | None, now: datetime, policy: TraitPolicy = DEFAULT_POLICY) -> int:
    """0 to 100, from the decayed engagement sum."""
    if raw_at is None:
        return 0
    current = decayed(raw, raw_at, now, policy)
    return round(100 * (1 - math.exp(-current / policy.engagement_scale)))


# --- NPS ----------------------------------------------------------------------------------


def nps_category(score: int | None) -> NpsCategory | None:
    if score is None:
        return None
    if score >= 9:
        return "promoter"
    return "passive" if score >= 7 else "detractor"


def nps_trend(latest: int | None, previous: int | None) -> Trend | None:
    if latest is None or previous is None:
        return None
    if latest == previous:
        return "flat"
    return "up" if latest > previous else "down"


# --- churn and lifecycle ------------------------------------------------------------------


ACTIVITY_SLOTS = 64
"""How many of the customer's latest active slots the profile keeps (older ones weigh
``(1 - alpha)^64``, nothing, in the mean)."""


def activity_slot(at: datetime, policy: TraitPolicy = DEFAULT_POLICY) -> int:
    """The start (epoch seconds, UTC) of the ``session_gap_hours`` slot ``at`` falls in."""
    length = round(policy.session_gap_hours * 3600)
    return math.floor(at.timestamp()) // length * length


def add_activity(slots: list[int], at: datetime, policy: TraitPolicy = DEFAULT_POLICY) -> bool:
    """Add the slot of an activity at ``at`` to ``slots`` (ascending, distinct, the latest
    :data:`ACTIVITY_SLOTS`), in place; whether it changed them.

    Keeping the latest N of a set is the same whatever order elements arrive in.
    """
    slot = activity_slot(at, policy)
    i = bisect.bisect_left(slots, slot)
    if i < len(slots) and slots[i] == slot:
        return False
    if len(slots) >= ACTIVITY_SLOTS and i == 0:
        return False  # older than every slot kept
    slots.insert(i, slot)
    if len(slots) > ACTIVITY_SLOTS:
        del slots[0]
    return True


def typical_interval(slots: list[int], policy: TraitPolicy = DEFAULT_POLICY) -> float | None:
    """The typical interval (days) between the visits in ``slots``; None before a second visit."""
    length = round(policy.session_gap_hours * 3600)
    starts = [s for i, s in enumerate(slots) if i == 0 or s - slots[i - 1] > length]
    if len(starts) < 2:
        return None
    alpha = policy.interval_smoothing
    typical: float | None = None
    for before, after in itertools.pairwise(starts):
        gap = (after - before) / 86400
        typical = gap if typical is None else alpha * gap + (1 - alpha) * typical
    return typical


def legacy_slots(
    last_activity: datetime, typical_days: float | None, policy: TraitPolicy = DEFAULT_POLICY
) -> list[int]:
    """Slots standing for a profile folded before slots were kept: its last activity, and one
    typical interval before it, so its typical interval carries over."""
    slots = [activity_slot(last_activity, policy)]
    if typical_days is not None and typical_days * 24 > 2 * policy.session_gap_hours:
        slots.insert(0, activity_slot(last_activity - timedelta(days=typical_days), policy))
    return slots


@dataclass(frozen=True, slots=True)
class ChurnRisk:
    ratio: float
    """Idle time over the customer's typical interval."""
    level: ChurnLevel


def churn_risk(
    last_activity: datetime, typical_days: float | None, now: datetime, policy: TraitPolicy = DEFAULT_POLICY
) -> ChurnRisk:
    typical = max(typical_days if typical_days is not None else policy.default_interval_days, 1 / 24)
    ratio = max(0.0, _days(now - last_activity)) / typical
    if ratio >= policy.churn_high_ratio:
        level: ChurnLevel = "high"
    elif ratio >= policy.churn_medium_ratio:
        level = "medium"
    else:
        level = "low"
    return ChurnRisk(round(ratio, 3), level)


def lifecycle_stage(
    orders: int,
    first_order_at: datetime | None,
    last_activity: datetime,
    churn: ChurnRisk,
    now: datetime,
    policy: TraitPolicy = DEFAULT_POLICY,
) -> LifecycleStage:
    if _days(now - last_activity) >= policy.churned_after_days:
        return "churned"
    if orders <= 0 or first_order_at is None:
        return "prospect"
    if churn.level == "high":
        return "at_risk"
    if _days(now - first_order_at) < policy.new_customer_days:
        return "new"
    return "active"


# --- all of them, for a profile -----------------------------------------------------------


def compute(profile: ProfileState, now: datetime, policy: TraitPolicy = DEFAULT_POLICY) -> Traits:
    """Every computed trait of ``profile`` as of ``now``."""
    scores = rfm(profile.last_order_at, profile.orders, profile.revenue - profile.refunded, now, policy)
    last_activity = profile.last_active_at or profile.last_seen
    churn = churn_risk(last_activity, profile.typical_interval_days, now, policy)
    loyalty = profile.computed  # the ledger's, as folded (see the module docstring)
    return Traits(
        as_of=now.replace(microsecond=now.microsecond // 1000 * 1000),  # as precise as ClickHouse keeps it
        rfm_recency=scores.recency if scores else None,
        rfm_frequency=scores.frequency if scores else None,
        rfm_monetary=scores.monetary if scores else None,
        rfm_segment=scores.segment if scores else None,
        engagement_score=engagement_score(profile.engagement_raw, profile.engagement_at, now, policy),
        nps_category=nps_category(profile.nps_latest),
        nps_trend=nps_trend(profile.nps_latest, profile.nps_previous),
        churn_ratio=churn.ratio,
        churn_risk=churn.level,
        lifecycle_stage=lifecycle_stage(profile.orders, profile.first_order_at, last_activity, churn, now, policy),
        loyalty_points=loyalty.loyalty_points if loyalty is not None else 0,
        loyalty_tier=loyalty.loyalty_tier if loyalty is not None else FIRST_TIER,
    )
