"""Scheduled rules: at each slot of a rule's cron expression, plan it for its segment's members.

A slot is claimed by a conditional update of the rule's last slot, so two replicas never fire
the same slot; a new schedule starts from now (it does not fire for the past).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from ecrm_interaction.consumer.intake import GivenFirings, Intake
from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec, ScheduleTrigger
from ecrm_interaction.engine.schedules import due_slots
from ecrm_interaction.engine.triggers import schedule_firings
from ecrm_interaction.storage import loyalty
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage import schedules as schedule_store
from ecrm_interaction.storage.facts import facts_of_many

if TYPE_CHECKING:
    from ecrm_interaction.consumer.intake import IntakeStep
    from ecrm_interaction.storage.store import Store

log = structlog.get_logger()
CHUNK = 500
"""Customers planned per transaction, as one batch of the intake (:meth:`IntakeStep.take`)."""


class Schedules:
    def __init__(self, store: Store, intake: IntakeStep) -> None:
        self.store, self.intake = store, intake

    async def fire(self, now: datetime) -> None:
        """Fire every enabled scheduled rule's slots that came since its last one."""
        rules = await asyncio.to_thread(self.store.read, rule_store.rules_in_force)
        for rule in rules:
            if not isinstance(rule.trigger, ScheduleTrigger):
                continue
            last = await asyncio.to_thread(self.store.read, schedule_store.schedule_last, rule.id)
            if last is None:  # a new schedule starts from now: it does not fire for the past
                await asyncio.to_thread(self.store.write, schedule_store.claim_slot, rule.id, None, now)
                continue
            for slot in due_slots(rule.trigger.cron, rule.trigger.timezone, last, now):
                if await asyncio.to_thread(self.store.write, schedule_store.claim_slot, rule.id, last, slot):
                    await asyncio.to_thread(self._fire, rule, slot, now)
                last = slot

    def _fire(self, rule: RuleSpec, slot: datetime, now: datetime) -> None:
        assert isinstance(rule.trigger, ScheduleTrigger)
        audience = self.store.read(schedule_store.audience, rule.trigger.segment)
        program = self.store.read(rule_store.loyalty_program)
        outcome = Intake()
        for start in range(0, len(audience), CHUNK):
            chunk = audience[start : start + CHUNK]
            with self.store.sessions.begin() as session:
                stored = facts_of_many(session, chunk)
                balances = loyalty.read_balances(session, chunk)
                changes = []
                for customer in chunk:
                    profile, segments, consent = stored[customer]
                    points = balances.get(customer, 0)
                    facts = Facts(
                        profile or {"customer_id": customer},
                        segments,
                        consent,
                        {"points": points, "tier": tier_of(points, program)},
                    )
                    changes.append(GivenFirings(schedule_firings(rule, [customer], slot), facts))
                self.intake.take(session, changes, [], LoyaltyProgram(), now, outcome)
        log.info("schedule_fired", rule=rule.id, slot=slot.isoformat(), audience=len(audience), planned=outcome.planned)
