"""Test data for the interaction service: profile changes and rules as the pipeline sends them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ecrm_interaction.conditions import Facts
from ecrm_interaction.rules import RuleSpec
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
