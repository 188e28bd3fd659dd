"""``webhook``: POST the decision (customer, trigger, rule) as JSON, signed per Standard Webhooks."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import orjson
from pydantic import BaseModel

from ecrm_interaction.delivery.actions.base import Job, Outcome, Wiring, action_completed, done, post_or_raise
from ecrm_interaction.delivery.webhooks import signed_headers
from ecrm_interaction.engine.rules import WebhookAction
from ecrm_interaction.storage.models import Action
from ecrm_schemas.actions import ActionKind


class WebhookExecutor:
    kind: ClassVar[ActionKind] = ActionKind.WEBHOOK
    spec: ClassVar[type[BaseModel]] = WebhookAction
    channel: ClassVar[str | None] = None

    def __init__(self, timeout_s: float, allowed: list[str]) -> None:
        self.timeout_s, self.allowed = timeout_s, allowed

    @classmethod
    def build(cls, wiring: Wiring) -> Self:
        return cls(wiring.settings.interaction_webhook_timeout_s, wiring.settings.webhook_allowed)

    async def execute(self, job: Job) -> Outcome:
        assert isinstance(job.spec, WebhookAction)
        action, payload = job.action, job.payload
        body = orjson.dumps(
            {
                "type": "ecrm.rule.fired",
                "id": action.id,
                "rule": {"id": action.rule_id, "name": payload.get("rule_name")},
                "customer_id": action.customer_id,
                "reason": payload.get("reason"),
                "trigger": payload.get("trigger"),
                "profile": payload.get("profile"),
                "at": job.now.isoformat(),
            }
        ).decode()
        url = str(job.spec.url)
        await post_or_raise(url, body, signed_headers(job.spec.secret, action.id, body), self.timeout_s, self.allowed)
        return done("delivered", recipient=url[:320])

    @staticmethod
    def completed(action: Action, spec: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return action_completed(action, base)
