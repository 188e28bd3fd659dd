"""The loyalty program, and a customer's points, tier and rewards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ecrm_interaction.api.deps import Marketer, SessionDep, Viewer
from ecrm_interaction.api.services.customers import loyalty_view
from ecrm_interaction.api.services.ttl_cache import TtlCache
from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_interaction.storage import loyalty, rules
from ecrm_interaction.storage.store import aware

TIER_COUNTS_TTL_S = 30.0
"""How long members per tier are kept (a count over every customer's balance: ~0.2 s with 100,000)."""


def router() -> APIRouter:
    routes = APIRouter(tags=["loyalty"])
    tier_counts = TtlCache(ttl_s=TIER_COUNTS_TTL_S, max_items=100)

    @routes.get("/v1/loyalty/program")
    def get_program(_who: Viewer, session: SessionDep) -> LoyaltyProgram:
        return rules.loyalty_program(session)

    @routes.put("/v1/loyalty/program")
    def put_program(program: LoyaltyProgram, who: Marketer, session: SessionDep) -> LoyaltyProgram:
        rules.set_loyalty_program(session, program, who.name)
        return program

    @routes.get("/v1/loyalty/tiers")
    def members_per_tier(_who: Viewer, session: SessionDep) -> list[dict[str, Any]]:
        """Each tier of the program with how many customers are in it (by their points
        balance; a customer without points is in the first tier), counted in the database at
        most :data:`TIER_COUNTS_TTL_S` seconds ago."""
        program = rules.loyalty_program(session)
        floors = [(t.name, t.min_points) for t in program.tiers]
        key = repr(floors)
        counts: dict[str, int] | None = tier_counts.get(key)
        if counts is None:
            counts = loyalty.members_per_tier(session, floors)
            tier_counts.put(key, counts)
        return [{"tier": t.name, "min_points": t.min_points, "members": counts[t.name]} for t in program.tiers]

    @routes.get("/v1/loyalty/rewards")
    def rewards_issued(
        _who: Viewer, session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
    ) -> dict[str, Any]:
        """How many of each reward were issued (with the points they cost and the last one's
        time), most issued first, and the latest ``limit`` issued (without their codes)."""
        counts, recent = loyalty.rewards_issued(session, limit)
        return {
            "rewards": [{"reward": c.reward, "issued": c.issued, "points": c.points,
                         "last_issued_at": aware(c.last_issued_at)} for c in counts],
            "recent": [{"customer_id": r.customer_id, "reward": r.reward, "points_cost": r.points_cost,
                        "rule_id": r.rule_id, "issued_at": aware(r.issued_at)} for r in recent],
        }  # fmt: skip

    @routes.get("/v1/customers/{customer_id}/loyalty")
    def customer_loyalty(customer_id: str, _who: Viewer, session: SessionDep) -> dict[str, Any]:
        return loyalty_view(session, customer_id)

    return routes
