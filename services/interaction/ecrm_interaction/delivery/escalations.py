"""Case escalations: an unresolved case past its SLA is escalated once (a ``Case Escalated``
event, and a mail to ``INTERACTION_ESCALATION_EMAIL`` when it is set)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from ecrm_interaction import metrics
from ecrm_interaction.delivery.smtp_sender import Mailer, compose
from ecrm_interaction.engine.rendering import RenderedEmail
from ecrm_interaction.engine.triggers import OWN_EVENTS
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage.store import aware
from ecrm_schemas.catalog import CatalogEvent

if TYPE_CHECKING:
    from ecrm_interaction.delivery.outbox_relay import OutboxRelay
    from ecrm_interaction.storage.store import Store

log = structlog.get_logger()


class Escalations:
    def __init__(self, store: Store, mailer: Mailer, relay: OutboxRelay, recipient: str | None) -> None:
        self.store, self.mailer, self.relay, self.recipient = store, mailer, relay, recipient

    async def escalate(self, now: datetime) -> None:
        """Escalate the cases that passed their SLA since the last call (each once)."""
        cases = await asyncio.to_thread(self.store.write, case_store.claim_escalations, now)
        for case in cases:
            text = (
                f"Case {case.id} ({case.priority}) for customer {case.customer_id} is past its SLA "
                f"({aware(case.sla_due_at):%Y-%m-%d %H:%M} UTC) and still {case.status}: {case.subject}"
            )
            if self.recipient:
                message = compose(
                    RenderedEmail(f"[eCRM] Escalated: {case.subject}"[:200], text, None),
                    sender=self.mailer.sender,
                    recipient=self.recipient,
                    send_id=f"escalation-{case.id}",
                    rule_id=case.rule_id or "",
                )
                try:
                    await self.mailer.send(message)
                except Exception as exc:  # the event still says it; operators see the log
                    log.error("escalation_mail_failed", case=case.id, error=type(exc).__name__)
            properties = {"case_id": case.id, "subject": case.subject, "priority": case.priority,
                          "status": case.status, "rule_id": case.rule_id}  # fmt: skip
            await asyncio.to_thread(
                self.relay.produce_event,
                CatalogEvent.CASE_ESCALATED,
                case.customer_id,
                f"{OWN_EVENTS}case-{case.id}-escalated",
                properties,
                now,
            )
            metrics.ESCALATIONS.inc()
        if cases:
            await asyncio.to_thread(self.relay.flush, 30)
