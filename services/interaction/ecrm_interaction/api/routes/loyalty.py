"""The loyalty program, and a customer's points, tier and rewards."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ecrm_interaction.api.deps import Marketer, SessionDep, Viewer
from ecrm_interaction.api.services.customers import loyalty_view
from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_interaction.storage import rules


def router() -> APIRouter:
    routes = APIRouter(tags=["loyalty"])

    @routes.get("/v1/loyalty/program")
    def get_program(_who: Viewer, session: SessionDep) -> LoyaltyProgram:
        return rules.loyalty_program(session)

    @routes.put("/v1/loyalty/program")
    def put_program(program: LoyaltyProgram, who: Marketer, session: SessionDep) -> LoyaltyProgram:
        rules.set_loyalty_program(session, program, who.name)
        return program

    @routes.get("/v1/customers/{customer_id}/loyalty")
    def customer_loyalty(customer_id: str, _who: Viewer, session: SessionDep) -> dict[str, Any]:
        return loyalty_view(session, customer_id)

    return routes
