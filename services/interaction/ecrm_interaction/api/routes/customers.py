"""A customer seen by sales and support: the 360 view, recommendations, personalization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ecrm_interaction.api.deps import SessionDep, Viewer
from ecrm_interaction.api.services import customers as service
from ecrm_interaction.api.services.customers import RecentEvents, Recommender
from ecrm_interaction.api.services.ttl_cache import TtlCache


def router(recommender: Recommender | None, recent_events: RecentEvents | None) -> APIRouter:
    """``recommender``: products for a customer (503 without); ``recent_events``: their latest
    events (ClickHouse; the view has none without)."""
    routes = APIRouter(tags=["customers"])
    personalization_cache = TtlCache(ttl_s=60)

    @routes.get("/v1/customers/{customer_id}")
    def customer_360(customer_id: str, _who: Viewer, session: SessionDep) -> dict[str, Any]:
        """Identity, traits and scores, segments, recent events, messages sent and suppressed,
        cases and loyalty: one call for sales and support staff."""
        view = service.customer_view(session, customer_id, recent_events)
        if view is None:
            raise HTTPException(404, "customer_not_found")
        return view

    @routes.get("/v1/customers/{customer_id}/recommendations")
    def recommendations(customer_id: str, _who: Viewer, limit: int = 10) -> dict[str, Any]:
        """Products for the customer: similar to what they viewed and bought, else popular ones;
        never what they bought or what is out of stock."""
        if recommender is None:
            raise HTTPException(503, "recommendations_unavailable")
        return {"customer_id": customer_id, "recommendations": recommender(customer_id, min(max(limit, 1), 50))}

    @routes.get("/v1/customers/{customer_id}/personalization")
    def personalization(customer_id: str, _who: Viewer, session: SessionDep) -> dict[str, Any]:
        """What a web page needs to greet the customer: highlights, segments, recommendations
        (cached for a minute per customer, for page renders)."""
        cached = personalization_cache.get(customer_id)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        value = service.personalization(session, customer_id, recommender)
        personalization_cache.put(customer_id, value)
        return value

    return routes
