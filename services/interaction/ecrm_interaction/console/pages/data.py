"""Data: the pipeline's health, the dead letters by reason (replay for admins), the event catalog.

Sources and write keys, the audit log and console users are admins' pages: :mod:`.data_admin`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/data"): "viewer",
    ("GET", "/console/data/dead-letters"): "viewer",
    ("POST", "/console/data/dead-letters/replay"): "admin",
    ("GET", "/console/data/catalog"): "viewer",
}
ACTIONS = {("POST", "/console/data/dead-letters/replay"): ("POST", "/v1/dead-letters/replay")}

TABS: tuple[tuple[str, str, str], ...] = (
    ("/console/data", "Pipeline health", "viewer"),
    ("/console/data/dead-letters", "Dead letters", "viewer"),
    ("/console/data/catalog", "Event catalog", "viewer"),
    ("/console/data/sources", "Sources and keys", "admin"),
    ("/console/data/audit", "Audit log", "admin"),
    ("/console/data/users", "Console users", "admin"),
)
"""The Data pages, each shown to who may open it."""


def tabs(staff: Any) -> list[tuple[str, str]]:
    return [(path, label) for path, label, role in TABS if staff.may(role)]


def unavailable(answer: Any, what: str) -> str:
    """Why a part of a page is missing, in words (the API's code for an operator)."""
    if answer.error_code == "kafka_unavailable":
        return f"{what}: Kafka cannot be read from this service right now."
    if answer.error_code == "clickhouse_unavailable":
        return f"{what}: ClickHouse is not configured for this service."
    return f"{what}: the API answered {answer.status} ({answer.error_code or answer.message})."


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/data")
    async def health(request: Request, staff: StaffDep) -> Response:
        answer = await staff.api.get("/v1/pipeline")
        pipeline = answer.body if answer.ok else None
        chart_x: list[int] = []
        chart_y: list[int] = []
        if pipeline is not None:
            for minute, events in pipeline["clickhouse"]["per_minute"]:
                chart_x.append(minute)
                chart_y.append(events)
        context: dict[str, Any] = {
            "tabs": tabs(staff),
            "pipeline": pipeline,
            "problem": None if answer.ok else unavailable(answer, "Pipeline health"),
            "chart_x": chart_x,
            "chart_series": [{"label": "events per minute", "values": chart_y}],
        }
        return render(request, "data/health.html", context, staff=staff)

    @routes.get("/console/data/dead-letters")
    async def dead_letters(
        request: Request, staff: StaffDep, reason: str = "", topic: str = "", replayed: str = ""
    ) -> Response:
        answer = await staff.api.get("/v1/dead-letters", reason=reason, topic=topic, limit=100)
        context: dict[str, Any] = {
            "tabs": tabs(staff),
            "letters": answer.body if answer.ok else None,
            "problem": None if answer.ok else unavailable(answer, "Dead letters"),
            "reason": reason,
            "topic": topic,
            "replayed": replayed,
            "errors": {},
        }
        return render(request, "data/dead_letters.html", context, staff=staff)

    @routes.post("/console/data/dead-letters/replay")
    async def replay(request: Request, staff: StaffDep) -> Response:
        _fields, api = await staff.posted(request)
        chosen = [str(v) for v in (await request.form()).getlist("entry")]
        entries = []
        for value in chosen:
            topic, _, rest = value.rpartition("@")
            partition, _, offset = rest.partition(":")
            if topic and partition.isdigit() and offset.isdigit():
                entries.append({"topic": topic, "partition": int(partition), "offset": int(offset)})
        answer = await api.call("POST", "/v1/dead-letters/replay", json={"entries": entries})
        if answer.ok:
            summary = answer.body
            text = (
                f"replayed {summary['replayed']}, still invalid {len(summary['still_invalid'])}, "
                f"never replayed {summary['refused']}, not found {summary['not_found']}"
            )
            return RedirectResponse("/console/data/dead-letters?" + urlencode({"replayed": text}), status_code=303)
        listing = await staff.api.get("/v1/dead-letters", limit=100)
        errors = answer.field_errors() or {"$": answer.message}
        if "entries" in errors:
            errors["$"] = "Choose at least one dead letter to replay: " + errors.pop("entries")
        context: dict[str, Any] = {
            "tabs": tabs(staff),
            "letters": listing.body if listing.ok else None,
            "problem": None if listing.ok else unavailable(listing, "Dead letters"),
            "reason": "",
            "topic": "",
            "replayed": "",
            "errors": errors,
        }
        return render(request, "data/dead_letters.html", context, staff=staff, status=answer.status)

    @routes.get("/console/data/catalog")
    async def catalog(request: Request, staff: StaffDep) -> Response:
        answer = await staff.api.get("/v1/catalog")
        context: dict[str, Any] = {
            "tabs": tabs(staff),
            "catalog": answer.body if answer.ok else None,
            "problem": None if answer.ok else unavailable(answer, "Event catalog"),
        }
        return render(request, "data/catalog.html", context, staff=staff)

    return routes
