"""From a firing to the actions to carry out (pure).

    Firing ─▶ cooldown? ─▶ conditions? ─▶ one PlannedAction per action of the rule
              (waiting until the rule's wait is over, else pending now)

The contact policy is applied when a message goes out (:mod:`ecrm_interaction.delivery.dispatcher`), not here: a
message that waits an hour, or until quiet hours end, is judged on the state at that time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ecrm_interaction.engine.conditions import Facts, describe, holds
from ecrm_interaction.engine.rules import format_duration
from ecrm_interaction.engine.triggers import Firing
from ecrm_schemas.catalog import CatalogEvent

RULE_DISABLED, RULE_DELETED = "rule_disabled", "rule_deleted"
"""Why an action was cancelled: its rule was switched off, or deleted, before it was carried out."""

UNREACHED = frozenset({"no_email_address", "no_consent", "hard_bounce", "cooldown", RULE_DISABLED, RULE_DELETED})
"""Reasons an action ended without reaching the customer through no choice of theirs: the
attempt does not use up a ``once_per_customer`` rule (the welcome goes out once the address
arrives). Frequency caps (``frequency_cap_…``) and failed deliveries count here too. An
unsubscribe or a spam complaint is the customer's own answer and does use it up, as does a
wait cancelled by the event it waits for (the journey ended as meant)."""


@dataclass(frozen=True, slots=True)
class PlannedAction:
    dedup_key: str
    kind: str
    rule_id: str
    customer_id: str
    category: str
    cause: str
    status: str
    """``pending`` (due now) or ``waiting`` (the rule's wait; events can cancel it)."""
    due_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    firing: Firing
    actions: list[PlannedAction] = field(default_factory=list)
    skipped: str | None = None
    """Why the firing does nothing, in words (``cooldown``, ``conditions not met: …``)."""
    skip_reason: str | None = None
    """The same as a code: ``max_event_age``, ``superseded``, ``cooldown`` or ``conditions_not_met``."""


def releases_once(payload: str | dict[str, Any] | None, status: str, reason: str | None) -> bool:
    """Whether an action of a ``once_per_customer`` rule that ended so frees the rule's one place
    for this customer (see :data:`UNREACHED`)."""
    data = orjson.loads(payload) if isinstance(payload, str) else payload or {}
    if not data.get("once_per_customer"):
        return False
    if status == "failed":
        return True
    if status not in ("suppressed", "cancelled") or reason is None:
        return False
    return reason in UNREACHED or reason.startswith("frequency_cap_")


def released_key(dedup_key: str, action_id: str) -> str:
    """The dedup key an action keeps once it freed its place: unique, and no firing's."""
    return f"{dedup_key}~released~{action_id}"


LATEST_WINS: dict[str, str] = {CatalogEvent.NPS_ANSWERED: "nps_at"}
"""Events of which only the latest counts, and the profile field holding the time of the latest:
an answer replaced by a newer one (imported, or delivered late) fires nothing."""


def superseded_by(firing: Firing, profile: dict[str, Any]) -> str | None:
    """When the profile holds a newer occurrence of the firing's latest-wins event, its time."""
    name = firing.trigger.get("event") if firing.trigger.get("type") == "track" else None
    field = LATEST_WINS.get(name) if isinstance(name, str) else None
    latest = profile.get(field) if field else None
    if firing.occurred_at is None or not isinstance(latest, str):
        return None
    try:
        latest_at = datetime.fromisoformat(latest)
    except ValueError:
        return None
    return latest if latest_at > firing.occurred_at else None


def reward_code(dedup_key: str, secret: str) -> str:
    """The reward code of a firing: the same for the reward and for the email that shows it."""
    digest = hmac.new(secret.encode(), dedup_key.encode(), hashlib.sha256).hexdigest().upper()
    return f"{digest[:4]}-{digest[4:8]}-{digest[8:12]}"


def plan(firing: Firing, facts: Facts, now: datetime, rule_last_at: datetime | None, secret: str) -> Plan:
    """The actions of ``firing``; ``rule_last_at``: when this rule last acted for this customer."""
    rule = firing.rule
    limit = rule.event_age_limit
    if limit is not None and firing.occurred_at is not None and now - firing.occurred_at > limit:
        age = format_duration(now - firing.occurred_at)
        return Plan(firing, skipped=f"the event is {age} old; max_event_age is {format_duration(limit)}",
                    skip_reason="max_event_age")  # fmt: skip
    if (newer := superseded_by(firing, facts.profile)) is not None:
        return Plan(firing, skipped=f"a newer answer replaced it ({newer})", skip_reason="superseded")
    if rule.cooldown is not None and rule_last_at is not None and now - rule_last_at < rule.cooldown:
        return Plan(firing, skipped="cooldown", skip_reason="cooldown")
    if not holds(rule.conditions, facts):
        assert rule.conditions is not None
        return Plan(
            firing, skipped=f"conditions not met: {describe(rule.conditions)}", skip_reason="conditions_not_met"
        )
    waiting = rule.wait is not None
    due = now + rule.wait.duration if rule.wait is not None else now
    context: dict[str, Any] = {
        "trigger": firing.trigger,
        "reason": firing.reason,
        "profile": facts.profile,
        "segments": sorted(facts.segments),
        "reward_code": reward_code(firing.dedup_key, secret),
    }
    if rule.once_per_customer:
        context["once_per_customer"] = True
    if rule.wait is not None:
        context["cancel_on"] = [m.model_dump(mode="json") for m in rule.wait.cancel_on]
    actions = [
        PlannedAction(
            dedup_key=f"{firing.dedup_key}:{index}",
            kind=action.kind,
            rule_id=rule.id,
            customer_id=firing.customer_id,
            category=rule.category,
            cause=firing.cause,
            status="waiting" if waiting else "pending",
            due_at=due,
            payload={"action": action.model_dump(mode="json"), "rule_name": rule.name, **context},
        )
        for index, action in enumerate(rule.actions)
    ]
    return Plan(firing, actions)
