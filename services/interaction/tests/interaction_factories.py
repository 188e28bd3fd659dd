"""Test data for the interaction service: profile changes and rules as the pipeline sends them."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy as email_policy
from pathlib import Path
from typing import Any

from ecrm_embedded.smtp_sink import SmtpSink
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec, TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.profile import ComputedTraits, CustomerProfile, ProfileChanged, TriggerEvent

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def trigger(
    type_: str = "identify", event: str | None = None, message_id: str = "m1", at: datetime = T0, **properties: Any
) -> TriggerEvent:
    return TriggerEvent(message_id=message_id, type=type_, event=event, timestamp=at, properties=properties)


def change(
    *triggers: TriggerEvent,
    customer: str = "u1",
    email: str | None = "ada@example.com",
    changed: list[str] | None = None,
    previous: dict[str, Any] | None = None,
    computed: dict[str, Any] | None = None,
    version: int = 1,
    **traits: Any,
) -> ProfileChanged:
    profile = CustomerProfile(
        customer_id=customer, user_id=customer, email=email, traits={"email": email, **traits},
        first_seen=T0, last_seen=T0, event_count=len(triggers), orders=1, version=version,
        computed=ComputedTraits(as_of=T0, **(computed or {})),
    )  # fmt: skip
    return ProfileChanged(
        customer_id=customer, profile=profile, changed=changed or ["traits"], previous=previous or {},
        triggers=list(triggers), emitted_at=T0,
    )  # fmt: skip


def rule(**fields: Any) -> RuleSpec:
    """A rule with an event trigger and one email action unless told otherwise."""
    base: dict[str, Any] = {"id": "r", "name": "R", "trigger": {"kind": "event", "event": "identify"},
                            "actions": [{"kind": "email", "template": "t"}]}  # fmt: skip
    return RuleSpec.model_validate(base | fields)


def facts(profile: dict[str, Any] | None = None, **kwargs: Any) -> Facts:
    return Facts(profile or {"customer_id": "u1", "orders": 1, "traits": {}}, **kwargs)


class DispatchSetup:
    """The interaction service's store, intake and dispatcher on SQLite, sending to a real SMTP
    sink (no producer): rules are loaded, profile changes taken and due actions carried out."""

    default_templates: tuple[TemplateSpec, ...] = ()
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)

    def __init__(self, tmp_path: Path, sink: SmtpSink, **settings: Any) -> None:
        self.settings = InteractionSettings(
            **{"database_url": f"sqlite:///{tmp_path}/i.db", "smtp_url": sink.url, "interaction_quiet_hours": "",
               **settings}
        )  # fmt: skip
        engine = make_engine(self.settings.database_url)
        migrate(engine)
        self.store = Store(engine)
        self.sink = sink
        self.dispatcher = Dispatcher(self.settings, self.store, producer=None)
        self.intake = IntakeStep(self.store, self.settings.tracking_secret.get_secret_value())

    def rules(self, *rules: RuleSpec, templates: tuple[TemplateSpec, ...] | None = None) -> None:
        chosen = self.default_templates if templates is None else templates
        self.store.write(rule_store.upsert_rules, list(chosen), list(rules))

    def take(self, changes: ProfileChanged | list[ProfileChanged], now: datetime | None = None) -> Intake:
        """A change, or several as one batch of the consumer, in one transaction."""
        batch = changes if isinstance(changes, list) else [changes]
        rules, _ = self.store.read(rule_store.enabled_rules)
        with self.store.sessions.begin() as session:
            return self.intake.take(session, batch, rules, LoyaltyProgram(), now or self.noon)

    async def tick(self, now: datetime | None = None) -> None:
        await self.dispatcher.tick(now or self.noon)

    def mails(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in self.sink.messages()]

    def decisions(self, **filters: Any) -> Any:
        return self.store.read(action_store.recent, **filters)
