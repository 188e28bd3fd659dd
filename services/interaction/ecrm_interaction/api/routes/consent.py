"""A customer's consent, per channel and purpose, as a marketer records it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ecrm_interaction.api.deps import Marketer, SessionDep, StoreDep
from ecrm_interaction.storage import audit
from ecrm_interaction.storage import customers as customer_store


class ConsentIn(BaseModel):
    granted: bool
    purpose: str = Field(default="marketing", min_length=1, max_length=100)


def router() -> APIRouter:
    routes = APIRouter(tags=["customers"])

    @routes.put("/v1/customers/{customer_id}/consent/{channel}")
    def put_consent(
        customer_id: str,
        channel: Literal["email", "sms", "push", "webhook"],
        consent: ConsentIn,
        who: Marketer,
        session: SessionDep,
        store: StoreDep,
    ) -> dict[str, Any]:
        """Record the customer's consent (audited); granting marketing email undoes an earlier unsubscribe."""
        now = datetime.now(UTC)
        customer_store.set_consent(
            session, customer_id, channel, consent.granted, consent.purpose, f"api:{who.name}", now
        )
        audit.record(
            session, who.name, "consent", "customer", customer_id, {"channel": channel, **consent.model_dump()}
        )
        return {"customer_id": customer_id, "channel": channel, **consent.model_dump()}

    return routes
