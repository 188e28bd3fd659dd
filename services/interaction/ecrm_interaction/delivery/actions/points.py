"""``points``: add loyalty points to (or take them from) the customer's balance; a tier crossed
on the way fires the rules that watch it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel

from ecrm_interaction.consumer.intake import Intake
from ecrm_interaction.delivery.actions.base import BatchReads, Job, Outcome, Wiring, action_completed, done
from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.rules import PointsAction
from ecrm_interaction.engine.triggers import loyalty_firings
from ecrm_interaction.storage import loyalty
from ecrm_interaction.storage.facts import facts_of
from ecrm_interaction.storage.models import Action
from ecrm_schemas.actions import ActionKind

if TYPE_CHECKING:
    from ecrm_interaction.consumer.intake import IntakeStep
    from ecrm_interaction.storage.store import Store


class Ledger:
    """Points a rule gives or takes (the points and reward actions share it)."""

    def __init__(self, store: Store, intake: IntakeStep) -> None:
        self.store, self.intake = store, intake

    def change(
        self, action: Action, points: int, reason: str, dedup_key: str, reads: BatchReads, now: datetime
    ) -> None:
        """Add a ledger entry once per ``dedup_key``; plan the rules of a tier it crosses."""
        program, rules = reads.program, list(reads.rules.values())
        with self.store.sessions.begin() as session:
            before = loyalty.balance(session, action.customer_id)
            added = loyalty.add_points(session, action.customer_id, points, reason, dedup_key, action.rule_id, now)
            if added is None:
                return
            after = before + added
            previous = {"points": before, "tier": tier_of(before, program)}
            current = {"points": after, "tier": tier_of(after, program)}
            firings = loyalty_firings(rules, action.customer_id, previous, current, action.id)
            if firings:
                profile, segments, consent = facts_of(session, action.customer_id)
                facts = Facts(profile or {"customer_id": action.customer_id}, segments, consent, current)
                self.intake.plan_firings(session, firings, facts, now, Intake())


class PointsExecutor:
    kind: ClassVar[ActionKind] = ActionKind.POINTS
    spec: ClassVar[type[BaseModel]] = PointsAction
    channel: ClassVar[str | None] = None

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @classmethod
    def build(cls, wiring: Wiring) -> Self:
        return cls(Ledger(wiring.store, wiring.intake))

    async def execute(self, job: Job) -> Outcome:
        spec = job.spec
        assert isinstance(spec, PointsAction)
        await asyncio.to_thread(
            self.ledger.change, job.action, spec.points, spec.reason, job.action.dedup_key, job.reads, job.now
        )
        return done(f"{spec.points:+d} points")

    @staticmethod
    def completed(action: Action, spec: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return action_completed(action, base)
