"""What a rule would do for a customer now, and why (pure): the REST API's dry run.

Nothing is written or sent. The answer walks the same steps as a real firing: the trigger
(with the event given, if any), the cooldown, each condition, then per action what would
happen, for messages the contact policy's verdict and the rendered subject, text and HTML
(without tracking links: nothing is sent).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ecrm_interaction.engine.conditions import Facts, describe, holds
from ecrm_interaction.engine.contact_policy import Contact, History, PolicySettings
from ecrm_interaction.engine.contact_policy import decide as policy_decision
from ecrm_interaction.engine.rendering import RenderError, message_context, render_email
from ecrm_interaction.engine.rules import (
    Condition,
    EmailAction,
    EventTrigger,
    RuleSpec,
    TemplateSpec,
    format_duration,
)
from ecrm_interaction.engine.triggers import event_matches
from ecrm_schemas.conditions import COMBINATIONS
from ecrm_schemas.profile import TriggerEvent


def _conditions(condition: Condition, facts: Facts) -> dict[str, Any]:
    node: dict[str, Any] = {"condition": describe(condition), "met": holds(condition, facts)}
    if isinstance(condition, COMBINATIONS):
        node["parts"] = [_conditions(c, facts) for c in condition.conditions]
    return node


def dry_run(
    rule: RuleSpec,
    facts: Facts,
    *,
    contact: Contact,
    history: History,
    templates: dict[str, TemplateSpec],
    now: datetime,
    policy: PolicySettings,
    event: TriggerEvent | None = None,
    rule_last_at: datetime | None = None,
) -> dict[str, Any]:
    steps: dict[str, Any] = {"rule": rule.id, "customer_id": facts.profile.get("customer_id"), "at": now.isoformat()}
    would = True
    if isinstance(rule.trigger, EventTrigger):
        if event is None:
            steps["trigger"] = {"matched": None, "detail": f"fires on {rule.trigger.event}; no event given"}
        else:
            matched = event_matches(rule.trigger, event)
            steps["trigger"] = {
                "matched": matched,
                "detail": f"{event.event or event.type} against {rule.trigger.event}",
            }
            would &= matched
            limit = rule.event_age_limit
            if limit is not None:
                too_old = now - event.timestamp > limit
                steps["max_event_age"] = {"too_old": too_old, "limit": format_duration(limit)}
                would &= not too_old
    else:
        steps["trigger"] = {"matched": None, "detail": f"fires on a {rule.trigger.kind} trigger"}
    if rule.cooldown is not None:
        cooling = rule_last_at is not None and now - rule_last_at < rule.cooldown
        steps["cooldown"] = {"active": cooling, "last_acted_at": rule_last_at.isoformat() if rule_last_at else None}
        would &= not cooling
    if rule.conditions is not None:
        steps["conditions"] = _conditions(rule.conditions, facts)
        would &= steps["conditions"]["met"]
    else:
        steps["conditions"] = {"met": True, "condition": "none"}
    after = now + rule.wait.duration if rule.wait is not None else now
    if rule.wait is not None:
        steps["wait"] = {"until": after.isoformat(), "cancelled_by": [m.event for m in rule.wait.cancel_on]}
    actions = []
    payload = {
        "profile": facts.profile,
        "trigger": event.model_dump(mode="json") if event else {},
        "reason": "dry run",
        "rule_name": rule.name,
        "segments": sorted(facts.segments),
    }
    for action in rule.actions:
        entry: dict[str, Any] = {"kind": action.kind}
        if isinstance(action, EmailAction):
            verdict = policy_decision(contact, history, rule.category, rule.cooldown, after, policy)
            entry["policy"] = {
                "outcome": verdict.outcome,
                "reason": verdict.reason,
                "checked": verdict.checked,
                "until": verdict.until.isoformat() if verdict.until else None,
            }
            template = templates.get(action.template)
            if template is None:
                entry["error"] = f"template {action.template!r} does not exist"
            else:
                try:
                    rendered = render_email(template, message_context(payload, rule_id=rule.id, loyalty=facts.loyalty))
                    entry["template"] = template.id
                    entry["subject"], entry["text"], entry["html"] = rendered.subject, rendered.text, rendered.html
                except RenderError as exc:
                    entry["error"] = str(exc)
        actions.append(entry)
    steps["actions"] = actions
    steps["would_fire"] = would
    return steps


def history_window(policy: PolicySettings, cooldown: timedelta | None) -> timedelta:
    """How far back the message history matters for this rule's policy."""
    return max([c.window for c in policy.caps] + [cooldown or timedelta(0)], default=timedelta(0))
