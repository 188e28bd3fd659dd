"""A customer seen by sales and support: the 360 view, recommendations, personalization."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from ecrm_interaction.api.deps import SessionDep, Viewer, WarehouseDep
from ecrm_interaction.api.services import customer_directory as directory
from ecrm_interaction.api.services import customer_story as story
from ecrm_interaction.api.services import customers as service
from ecrm_interaction.api.services.customers import RecentEvents, Recommender
from ecrm_interaction.api.services.ttl_cache import TtlCache
from ecrm_interaction.api.services.warehouse import Warehouse

LifecycleStage = Literal["", "prospect", "new", "active", "at_risk", "churned"]
"""A lifecycle stage, or "" for any."""
Short = Annotated[str, Query(max_length=200)]


def _optional_warehouse(request: Request) -> Warehouse | None:
    """ClickHouse when configured (the routes that still answer their relational half without it)."""
    warehouse: Warehouse | None = request.app.state.warehouse
    return warehouse


def router(recommender: Recommender | None, recent_events: RecentEvents | None) -> APIRouter:
    """``recommender``: products for a customer (503 without); ``recent_events``: their latest
    events (ClickHouse; the view has none without)."""
    routes = APIRouter(tags=["customers"])
    personalization_cache = TtlCache(ttl_s=60)

    @routes.get("/v1/customers")
    def list_customers(
        _who: Viewer,
        warehouse: WarehouseDep,
        q: Short = "",
        trait: Annotated[str, Query(max_length=200, pattern=r"^([^=]+=.*)?$")] = "",
        segment: Annotated[str, Query(max_length=64)] = "",
        stage: LifecycleStage = "",
        rfm: Annotated[str, Query(max_length=64)] = "",
        tier: Annotated[str, Query(max_length=64)] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 25,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> dict[str, Any]:
        """Customers (ClickHouse profiles), the most recently seen first, a page at a time
        (``next_offset`` is null on the last page). ``q``: the id (or its start), a part of the
        email or of any trait value; ``trait``: ``key=value``, that trait exactly; ``segment``:
        a segment id the customer is in; ``stage``: the lifecycle stage; ``rfm``: the RFM
        segment (``champions``, ``at_risk``…); ``tier``: the loyalty tier."""
        wanted = directory.CustomerFilter(q=q, trait=trait, segment=segment, stage=stage, rfm=rfm, tier=tier)
        return directory.search(warehouse, wanted, limit, offset)

    @routes.get("/v1/customers/{customer_id}/identity")
    def customer_identity(customer_id: str, _who: Viewer, warehouse: WarehouseDep) -> dict[str, Any]:
        """The customer's ids (anonymous ids stitched to them) and every merge, refusal and
        unmerge that named them (ClickHouse's identity tables), newest first."""
        return directory.identity(warehouse, customer_id)

    @routes.get("/v1/customers/{customer_id}/timeline")
    def customer_timeline(
        customer_id: str,
        _who: Viewer,
        session: SessionDep,
        warehouse: Annotated[Warehouse | None, Depends(_optional_warehouse)],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """The customer's latest happenings, newest first, each with the reason that matters:
        their events, the segments they entered and left (and why), what each rule decided
        (planned, and skipped with the reason). Without ClickHouse only the decisions
        (``warehouse`` names what is missing)."""
        return story.timeline(session, warehouse, customer_id, limit)

    @routes.get("/v1/customers/{customer_id}/messages")
    def customer_messages(
        customer_id: str,
        _who: Viewer,
        session: SessionDep,
        warehouse: Annotated[Warehouse | None, Depends(_optional_warehouse)],
        limit: Annotated[int, Query(ge=1, le=50)] = 20,
    ) -> dict[str, Any]:
        """Every email planned for the customer (the latest ``limit``), with its decision, its
        copy (rendered again from the template version in force when it was sent and the payload stored with the
        send: the body is not stored) and its fate (delivered, opened, clicked, bounced,
        complained: the first time of each, from ClickHouse's email events)."""
        return story.messages(session, warehouse, customer_id, limit)

    @routes.get("/v1/customers/{customer_id}")
    def customer_360(
        customer_id: str,
        _who: Viewer,
        session: SessionDep,
        events: Annotated[int, Query(ge=0, le=200)] = 20,
    ) -> dict[str, Any]:
        """Identity, traits and scores, segments, the latest ``events`` events (0: none, and
        ClickHouse is not asked; ``/timeline`` pages through them), messages sent and
        suppressed, cases and loyalty: one call for sales and support staff."""
        view = service.customer_view(session, customer_id, recent_events if events else None, events)
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
