"""Home: the figures a marketer opens the day with (``GET /v1/figures``), each linking to its detail."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.rendering import render

PAGES = {("GET", "/console"): "viewer"}
ACTIONS: dict[tuple[str, str], tuple[str, str]] = {}


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console")
    async def home(request: Request, staff: StaffDep) -> Response:
        answer = await staff.api.get("/v1/figures")
        figures = answer.body if answer.ok else None
        unavailable = set(figures["unavailable"]) if figures else set()
        context = {"figures": figures, "unavailable": unavailable, "problem": "" if answer.ok else answer.message}
        return render(request, "home.html", context, staff=staff)

    return routes
