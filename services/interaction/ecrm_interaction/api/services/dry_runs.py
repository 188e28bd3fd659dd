"""A rule's dry run with what is stored now: the facts, contact and history of the customer
gathered here, the verdict computed by :func:`ecrm_interaction.engine.dry_run.dry_run`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.contact_policy import Contact, History, PolicySettings
from ecrm_interaction.engine.dry_run import dry_run, history_window
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.rules import RuleSpec
from ecrm_interaction.storage import loyalty, rules, suppressions
from ecrm_interaction.storage.contacts import contact as contact_of
from ecrm_interaction.storage.contacts import message_history
from ecrm_interaction.storage.facts import facts_of, rule_last_acted
from ecrm_schemas.profile import TriggerEvent


def dry_run_now(
    session: Session,
    rule: RuleSpec,
    customer_id: str,
    event: TriggerEvent | None,
    policy: PolicySettings,
) -> dict[str, Any]:
    """What ``rule`` would do for the customer now (with ``event`` as its trigger), and why."""
    now = datetime.now(UTC)
    program = rules.loyalty_program(session)
    profile, segments, consent = facts_of(session, customer_id)
    points = loyalty.balance(session, customer_id)
    last = rule_last_acted(session, rule.id, customer_id)
    facts = Facts(
        profile or {"customer_id": customer_id}, segments, consent, {"points": points, "tier": tier_of(points, program)}
    )
    row = contact_of(session, customer_id)
    address = row.email or (profile or {}).get("email")
    suppression = suppressions.of_address(session, address) if address and not row.email else None
    contact = Contact(
        address,
        row.timezone,
        row.consent.get("email"),
        row.unsubscribed,
        suppression.reason if suppression is not None else row.suppressed,
    )
    sent, rule_last = message_history(session, customer_id, rule.id, now - history_window(policy, rule.cooldown))
    return dry_run(
        rule,
        facts,
        contact=contact,
        history=History(sent, rule_last),
        templates=rules.templates(session),
        now=now,
        policy=policy,
        event=event,
        rule_last_at=last,
    )
