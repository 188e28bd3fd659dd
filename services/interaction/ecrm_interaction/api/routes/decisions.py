"""What rules decided: every decision with its outcome and reason, and the email sends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ecrm_interaction.api.deps import SessionDep, Viewer
from ecrm_interaction.api.errors import error_response
from ecrm_interaction.api.views import DecisionView, SendView
from ecrm_interaction.storage import actions

DECISION_FILTERS = frozenset({"customer_id", "rule_id", "kind", "status", "reason", "limit"})


def router() -> APIRouter:
    routes = APIRouter(tags=["decisions"])

    @routes.get("/v1/decisions", response_model=list[DecisionView])
    def list_decisions(
        request: Request,
        _who: Viewer,
        session: SessionDep,
        customer_id: str | None = None,
        rule_id: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        reason: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DecisionView] | JSONResponse:
        """Every decision, newest first: the actions rules planned with their outcome and reason,
        and the firings skipped (``status=skipped``: cooldown, conditions not met, an event too
        old or superseded). Filters: ``customer_id``, ``rule_id``, ``kind`` (an action's kind),
        ``status`` (the outcome: ``waiting``, ``pending``, ``sent``, ``suppressed``,
        ``cancelled``, ``skipped``…), ``reason`` (a prefix: ``frequency_cap``); another
        parameter is refused."""
        unknown = sorted(set(request.query_params) - DECISION_FILTERS)
        if unknown:
            errors = [{"field": name, "rule": "unknown_filter", "message": f"{name!r} is not a filter of decisions; "
                       f"use {', '.join(sorted(DECISION_FILTERS))}"} for name in unknown]  # fmt: skip
            return error_response(422, "invalid_request", "unknown query parameters", errors)
        wanted = actions.DecisionFilter(customer_id, rule_id, kind, status, reason, limit)
        return [DecisionView.of(row) for row in actions.decisions(session, wanted)]

    @routes.get("/v1/sends")
    def list_sends(
        _who: Viewer, session: SessionDep, customer_id: str | None = None, limit: int = 100
    ) -> list[SendView]:
        """The email decisions, optionally for one customer."""
        return [SendView.of(a) for a in actions.recent(session, customer_id, "email", None, min(max(limit, 1), 1000))]

    return routes
