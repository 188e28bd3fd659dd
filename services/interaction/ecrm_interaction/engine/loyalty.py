"""The loyalty program (pure): points a customer earns from an event, and their tier.

Purchases earn ``points_per_unit`` per unit of the order's revenue (else its total), rounded
down; engagement events earn the points the program lists for them (a survey answer, a
clicked email…). Refunds take back the points of the refunded amount. Rules add or take
points and issue rewards; the balance is the sum of the ledger, the tier the highest whose
threshold the balance reaches.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.profile import TriggerEvent


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return amount if amount.is_finite() and amount > 0 else Decimal(0)


def earned(trigger: TriggerEvent, program: LoyaltyProgram) -> tuple[int, str] | None:
    """Points ``trigger`` earns (negative for a refund) and why; None when it earns none."""
    if trigger.type != "track" or trigger.event is None:
        return None
    props = trigger.properties
    if trigger.event == CatalogEvent.ORDER_COMPLETED:
        amount = _amount(props.get("revenue", props.get("total")))
        points = math.floor(amount * Decimal(str(program.points_per_unit)))
        return (points, f"order {props.get('order_id', '')}".strip()) if points else None
    if trigger.event == CatalogEvent.ORDER_REFUNDED:
        points = math.floor(_amount(props.get("total")) * Decimal(str(program.points_per_unit)))
        return (-points, f"refund of order {props.get('order_id', '')}".strip()) if points else None
    engagement = program.events.get(trigger.event)
    if engagement and not (trigger.event == CatalogEvent.EMAIL_OPENED and props.get("machine_open")):
        return engagement, trigger.event
    return None


def tier_of(points: int, program: LoyaltyProgram) -> str:
    tier = program.tiers[0].name
    for spec in program.tiers:
        if points >= spec.min_points:
            tier = spec.name
    return tier


def next_tier(points: int, program: LoyaltyProgram) -> dict[str, Any] | None:
    """The next tier and the points still needed, for the customer view."""
    for spec in program.tiers:
        if points < spec.min_points:
            return {"tier": spec.name, "points_needed": spec.min_points - points}
    return None
