"""``notify``: tell a marketer or a team about the customer and why, by email and/or a chat webhook."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import orjson
from pydantic import BaseModel

from ecrm_interaction.delivery.actions.base import (
    Job,
    Outcome,
    Retry,
    Wiring,
    action_completed,
    done,
    post_or_raise,
    render_failed,
)
from ecrm_interaction.delivery.smtp_sender import Mailer, compose
from ecrm_interaction.delivery.webhooks import signed_headers
from ecrm_interaction.engine.rendering import RenderedEmail, RenderError, message_context, render_text
from ecrm_interaction.engine.rules import NotifyAction
from ecrm_interaction.storage.models import Action
from ecrm_schemas.actions import ActionKind


class NotifyExecutor:
    kind: ClassVar[ActionKind] = ActionKind.NOTIFY
    spec: ClassVar[type[BaseModel]] = NotifyAction
    channel: ClassVar[str | None] = None

    def __init__(self, mailer: Mailer, secret: str, timeout_s: float, allowed: list[str]) -> None:
        self.mailer, self.secret, self.timeout_s, self.allowed = mailer, secret, timeout_s, allowed

    @classmethod
    def build(cls, wiring: Wiring) -> Self:
        settings = wiring.settings
        return cls(
            wiring.mailer,
            settings.tracking_secret.get_secret_value(),
            settings.interaction_webhook_timeout_s,
            settings.webhook_allowed,
        )

    async def execute(self, job: Job) -> Outcome:
        spec, action = job.spec, job.action
        assert isinstance(spec, NotifyAction)
        context = message_context(job.payload, rule_id=action.rule_id or "")
        try:
            text = render_text(spec.message, context)
        except RenderError as exc:
            raise render_failed(action, exc, part="message") from exc
        if spec.chat_webhook is not None:
            body = orjson.dumps({"text": text}).decode()
            headers = signed_headers(self.secret, action.id, body)
            await post_or_raise(str(spec.chat_webhook), body, headers, self.timeout_s, self.allowed)
        for address in spec.emails:
            subject = f"[eCRM] {context['rule']['name']}: {action.customer_id}"
            message = compose(
                RenderedEmail(subject, text, None),
                sender=self.mailer.sender,
                recipient=address,
                send_id=f"{action.id}-{address}",
                rule_id=action.rule_id or "",
            )
            try:
                await self.mailer.send(message)
            except Exception as exc:
                raise Retry(f"smtp: {type(exc).__name__}") from exc
        return done("notified", recipient=", ".join(spec.emails)[:320] or None, subject=text[:500])

    @staticmethod
    def completed(action: Action, spec: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return action_completed(action, base)
