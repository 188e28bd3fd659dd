"""A customer's story as a person reads it: the timeline (their events, the segments they
entered and left and why, what each rule decided and why) and every email sent to them with
its copy and its fate.

The decisions and emails are the relational store's (``actions``, ``skipped_decisions``); the
events, segment changes and email fates ClickHouse's (:mod:`.customer_directory`). Without
ClickHouse (``warehouse`` None) the relational half still answers and ``warehouse`` says why
the rest is missing.

The copy of an email is not stored when it is sent (only its subject): it is rendered again
here from the template version in force when it was sent (every save is a version) and the
payload stored with the action (the profile, the trigger, the reason), so it is what was sent
unless it held recommendations (those are left out) or the loyalty balance (today's is used).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.orm import Session

from ecrm_interaction.api.services import customer_directory as directory
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.api.views import DecisionView
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.rendering import RenderError, message_context, render_email
from ecrm_interaction.storage import actions, loyalty, rules
from ecrm_interaction.storage.models import Action
from ecrm_interaction.storage.store import aware

UNSUBSCRIBE_PLACEHOLDER = "#unsubscribe-link-of-the-sent-email"

FATE_SLACK = timedelta(days=1)
"""How much earlier than an email was planned its fate events are still looked for (the
clocks of the mail provider and ours disagree a little)."""


def _iso(value: datetime | None) -> str | None:
    moment = aware(value)
    return moment.isoformat() if moment is not None else None


def _decision_item(view: DecisionView) -> dict[str, Any]:
    """A decision as a timeline item: rule Y decided … because …"""
    rule = view.rule_id or "a manual action"
    if view.status == "skipped":
        title = f"Rule {rule} did nothing ({view.reason})"
        reason = view.detail or view.reason
        if view.count > 1:
            reason = f"{reason} ({view.count} times)"
    else:
        title = f"Rule {rule} planned {view.kind}: {view.status}"
        reason = view.reason
    at = view.done_at if view.status == "skipped" else view.created_at
    return {"at": at.isoformat() if at else None, "kind": "decision", "title": title,
            "detail": f"caused by {view.cause}" if view.cause else "", "reason": reason, "ref": view.id}  # fmt: skip


def timeline(session: Session, warehouse: Warehouse | None, customer_id: str, limit: int) -> dict[str, Any]:
    """The customer's latest ``limit`` happenings, newest first: events, segment entries and
    exits, decisions (planned and skipped)."""
    wanted = actions.DecisionFilter(customer_id=customer_id, limit=limit)
    decided = [_decision_item(DecisionView.of(r)) for r in actions.decisions(session, wanted)]
    items, missing = list(decided), None
    if warehouse is None:
        missing = "clickhouse_unavailable"
    else:
        try:
            keys = directory.keys_of(warehouse, customer_id)
            items += directory.events(warehouse, keys, limit)
            items += directory.segment_changes(warehouse, customer_id, limit)
        except Exception as exc:  # ClickHouse away: the decisions still answer
            missing = type(exc).__name__
    items.sort(key=lambda item: item["at"] or "", reverse=True)
    return {"customer_id": customer_id, "items": items[:limit], "warehouse": missing}


def message_copy(session: Session, action: Action, templates: dict[str, Any], points: int, tier: str) -> dict[str, Any]:
    """The email ``action`` sent, rendered again (see the module docstring): ``subject``,
    ``text``, ``html``, or ``error`` when it cannot be."""
    payload = orjson.loads(action.payload or "{}")
    template_id = (payload.get("action") or {}).get("template")
    sent_at = action.done_at or action.updated_at
    template = rules.template_in_force(session, template_id, sent_at) if template_id and sent_at else None
    template = template or (templates.get(template_id) if template_id else None)
    if template is None:
        return {"template": template_id, "error": f"the template {template_id!r} no longer exists"}
    context = message_context(
        payload,
        rule_id=action.rule_id or "",
        loyalty={"points": points, "tier": tier},
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
    )
    try:
        rendered = render_email(template, context)
    except RenderError as exc:
        return {"template": template_id, "error": str(exc)[:500]}
    return {"template": template_id, "subject": action.subject or rendered.subject, "text": rendered.text,
            "html": rendered.html}  # fmt: skip


def messages(session: Session, warehouse: Warehouse | None, customer_id: str, limit: int) -> dict[str, Any]:
    """The latest ``limit`` emails planned for the customer, newest first, each with its
    decision (status, reason), its copy (rendered again for those sent) and its fate."""
    planned = actions.recent(session, customer_id=customer_id, kind="email", limit=limit)
    fates: dict[str, dict[str, str | None]] = {}
    missing = None
    if warehouse is None:
        missing = "clickhouse_unavailable"
    elif planned:
        try:
            keys = directory.keys_of(warehouse, customer_id)
            earliest = min(aware(a.created_at) or datetime.now(UTC) for a in planned)
            since = earliest.astimezone(UTC).replace(tzinfo=None) - FATE_SLACK
            fates = directory.email_fates(warehouse, keys, [a.id for a in planned], since)
        except Exception as exc:  # ClickHouse away: the messages without their fate
            missing = type(exc).__name__
    templates = rules.templates(session) if planned else {}
    points = loyalty.balance(session, customer_id) if planned else 0
    tier = tier_of(points, rules.loyalty_program(session)) if planned else ""
    listed = []
    for action in planned:
        fate = fates.get(action.id, {})
        listed.append(
            {
                "id": action.id,
                "rule_id": action.rule_id,
                "status": action.status,
                "reason": action.reason,
                "recipient": action.recipient,
                "subject": action.subject,
                "created_at": _iso(action.created_at),
                "sent_at": _iso(action.done_at) if action.status == "sent" else None,
                "fate": fate,
                "outcome": _outcome(action.status, fate),
                "rendered": message_copy(session, action, templates, points, tier) if action.status == "sent" else None,
            }
        )
    note = "rendered again from the template version in force when it was sent and the payload stored with the send"
    return {"customer_id": customer_id, "messages": listed, "warehouse": missing, "rendered_note": note}


def _outcome(status: str, fate: dict[str, str | None]) -> str:
    """The furthest a message got: complained, bounced, clicked, opened, delivered, sent, or its status."""
    for word in ("complained", "bounced", "clicked", "opened", "delivered"):
        if fate.get(word):
            return word
    return status
