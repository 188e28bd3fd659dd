"""``reward``: issue a reward code (its points cost taken from the balance); a later email action
of the same rule shows it as ``reward.code``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel

from ecrm_interaction.delivery.actions.base import Job, Outcome, Wiring, done
from ecrm_interaction.delivery.actions.points import Ledger
from ecrm_interaction.engine.rules import RewardAction
from ecrm_interaction.storage import loyalty
from ecrm_interaction.storage.models import Action
from ecrm_schemas.actions import ActionKind
from ecrm_schemas.catalog import CatalogEvent

if TYPE_CHECKING:
    from ecrm_interaction.storage.store import Store


class RewardExecutor:
    kind: ClassVar[ActionKind] = ActionKind.REWARD
    spec: ClassVar[type[BaseModel]] = RewardAction
    channel: ClassVar[str | None] = None

    def __init__(self, store: Store, ledger: Ledger) -> None:
        self.store, self.ledger = store, ledger

    @classmethod
    def build(cls, wiring: Wiring) -> Self:
        return cls(wiring.store, Ledger(wiring.store, wiring.intake))

    async def execute(self, job: Job) -> Outcome:
        return await asyncio.to_thread(self._issue, job)

    def _issue(self, job: Job) -> Outcome:
        spec, action = job.spec, job.action
        assert isinstance(spec, RewardAction)
        code = job.payload.get("reward_code") or action.id
        with self.store.sessions.begin() as session:
            issued = loyalty.issue_reward(
                session, action.customer_id, spec.reward, code, spec.points_cost, action.dedup_key, action.rule_id,
                job.now,
            )  # fmt: skip
        if issued and spec.points_cost:
            cost = f"{action.dedup_key}:cost"
            self.ledger.change(action, -spec.points_cost, f"reward {spec.reward}", cost, job.reads, job.now)
        return done(f"reward {spec.reward}", recipient=code)

    @staticmethod
    def completed(action: Action, spec: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        properties = {"reward_id": action.id, "kind": spec.get("reward", "reward"), "rule_id": action.rule_id}
        return CatalogEvent.REWARD_ISSUED, properties
