"""How each computed trait of a customer came about, in words, next to its value.

The formulas are the aggregator's (``ecrm_aggregator.computed_traits``, documented in
docs/catalog.md "Computed traits"); this module only reads a stored profile (its aggregates and
its ``computed`` traits) and says which inputs gave which value. The thresholds it quotes are
the aggregator's defaults (``TraitPolicy``): ``services/interaction/tests/test_customer_directory.py`` fails when
they drift apart. Pure: no clock (``as_of`` is the scores' own moment), no I/O.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

RECENCY_DAYS = (30, 60, 120, 240)
FREQUENCY_ORDERS = (2, 3, 5, 10)
MONETARY = (50, 150, 500, 1500)
ENGAGEMENT_HALF_LIFE_DAYS = 14.0
ENGAGEMENT_SCALE = 20.0
CHURN_MEDIUM_RATIO = 2.0
CHURN_HIGH_RATIO = 4.0
DEFAULT_INTERVAL_DAYS = 30.0
CHURNED_AFTER_DAYS = 180.0
NEW_CUSTOMER_DAYS = 30.0

RFM_SEGMENT_NAMES = (
    "champions", "loyal", "cannot_lose_them", "at_risk", "potential_loyalist", "new_customers", "promising",
    "need_attention", "about_to_sleep", "hibernating", "lost",
)  # fmt: skip
"""The RFM segments ("cells") a profile can be in, as the aggregator names them."""

DEFINITIONS: dict[str, str] = {
    "lifecycle_stage": (
        f"churned when idle {CHURNED_AFTER_DAYS:g} days; else prospect without an order; at_risk when churn risk is "
        f"high; new when the first order is under {NEW_CUSTOMER_DAYS:g} days old; else active"
    ),
    "rfm_recency": "days since the last order: "
    + ", ".join(f"≤ {days} → {5 - i}" for i, days in enumerate(RECENCY_DAYS))
    + ", older → 1",
    "rfm_frequency": "orders: "
    + ", ".join(f"under {orders} → {i + 1}" for i, orders in enumerate(FREQUENCY_ORDERS))
    + f", {FREQUENCY_ORDERS[-1]} or more → 5",
    "rfm_monetary": "net revenue (revenue - refunds): "
    + ", ".join(f"under {amount:,} → {i + 1}" for i, amount in enumerate(MONETARY))
    + ", more → 5",
    "rfm_segment": "the R x FM grid (FM: the rounded mean of frequency and monetary), e.g. R 5 and FM 4-5 → champions",
    "engagement_score": (
        "each activity adds a weight (page view 1, product viewed 2, added to cart 3, order 10, email opened 1, "
        f"clicked 3, survey 2), decaying with a half-life of {ENGAGEMENT_HALF_LIFE_DAYS:g} days; "
        f"score = round(100 · (1 - e^(-sum / {ENGAGEMENT_SCALE:g})))"
    ),
    "churn_risk": (
        f"idle time over the typical interval between visits ({DEFAULT_INTERVAL_DAYS:g} days until a second "
        f"visit): low below {CHURN_MEDIUM_RATIO:g}, high from {CHURN_HIGH_RATIO:g}, medium between"
    ),
    "nps_category": "the latest NPS answer: 9-10 promoter, 7-8 passive, 0-6 detractor",
    "nps_trend": "the latest NPS answer against the previous one: up, down or flat",
    "loyalty_tier": "the loyalty ledger's balance against the program's tiers (the interaction service's ledger)",
}
"""Each computed trait's formula in one sentence (docs/catalog.md has them in full)."""


def _at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _days(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds() / 86400)


def _num(value: Any) -> float:
    return float(Decimal(str(value))) if value not in (None, "") else 0.0


def explain(profile: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each computed trait of ``profile`` (a stored ``CustomerProfile`` as JSON): its ``name``,
    ``value``, ``definition`` (the formula) and ``inputs`` (this customer's numbers that gave it).
    Empty when the profile has no computed traits yet."""
    computed = (profile or {}).get("computed") or {}
    if not computed:
        return []
    p = profile or {}
    as_of = _at(computed.get("as_of"))
    orders = int(p.get("orders") or 0)
    net = _num(p.get("revenue")) - _num(p.get("refunded"))
    since_order = _days(as_of, _at(p.get("last_order_at")))
    first_order_age = _days(as_of, _at(p.get("first_order_at")))
    last_activity = _at(p.get("last_active_at")) or _at(p.get("last_seen"))
    idle = _days(as_of, last_activity)
    typical = p.get("typical_interval_days")
    default = f"{DEFAULT_INTERVAL_DAYS:g} days (default)"
    typical_text = f"{typical:.1f} days" if isinstance(typical, int | float) else default
    inputs: dict[str, str] = {
        "lifecycle_stage": (f"{orders} orders; idle {idle:.1f} days" if idle is not None else f"{orders} orders")
        + (f"; first order {first_order_age:.1f} days before" if first_order_age is not None else "")
        + f"; churn risk {computed.get('churn_risk') or '—'}",
        "rfm_recency": f"last order {since_order:.1f} days before" if since_order is not None else "no order yet",
        "rfm_frequency": f"{orders} orders",
        "rfm_monetary": f"net revenue {net:,.2f}",
        "rfm_segment": (
            f"R {computed.get('rfm_recency')}, F {computed.get('rfm_frequency')}, M {computed.get('rfm_monetary')}"
            if computed.get("rfm_recency") is not None
            else "no order yet"
        ),
        "engagement_score": (
            f"activity sum {float(p.get('engagement_raw') or 0):.2f} as of {p.get('engagement_at')}"
            if p.get("engagement_at")
            else "no activity yet"
        ),
        "churn_risk": (
            f"idle {idle:.1f} days / typical {typical_text} = ratio {computed.get('churn_ratio')}"
            if idle is not None
            else "no activity yet"
        ),
        "nps_category": f"latest answer {p.get('nps_latest')}" if p.get("nps_latest") is not None else "no answer yet",
        "nps_trend": (
            f"latest {p.get('nps_latest')}, previous {p.get('nps_previous')}"
            if p.get("nps_previous") is not None
            else "no second answer yet"
        ),
        "loyalty_tier": f"{computed.get('loyalty_points', 0)} points",
    }
    return [
        {"name": name, "value": computed.get(name), "definition": definition, "inputs": inputs[name],
         "as_of": computed.get("as_of")}
        for name, definition in DEFINITIONS.items()
    ]  # fmt: skip
