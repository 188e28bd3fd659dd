"""Test data for the interaction service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ecrm_schemas.profile import CustomerProfile, ProfileChanged, TriggerEvent

T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


def trigger(
    type_: str = "identify", event: str | None = None, message_id: str = "m1", **properties: Any
) -> TriggerEvent:
    return TriggerEvent(message_id=message_id, type=type_, event=event, timestamp=T0, properties=properties)


def change(
    *triggers: TriggerEvent, customer: str = "u1", email: str | None = "ada@example.com", **traits: Any
) -> ProfileChanged:
    profile = CustomerProfile(
        customer_id=customer, user_id=customer, email=email, traits={"email": email, **traits},
        first_seen=T0, last_seen=T0, event_count=len(triggers), orders=1,
    )  # fmt: skip
    return ProfileChanged(
        customer_id=customer, profile=profile, changed=["traits"], triggers=list(triggers), emitted_at=T0
    )
