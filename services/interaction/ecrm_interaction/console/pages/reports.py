"""Reports: the list with each report's definition, a report with its filters, chart and table
(each number a link to the customers behind it), and those customers."""

from __future__ import annotations

import asyncio
from typing import Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.rendering import render
from ecrm_interaction.reports import REPORTS

PAGES = {
    ("GET", "/console/reports"): "viewer",
    ("GET", "/console/reports/{name}"): "viewer",
    ("GET", "/console/reports/{name}/customers"): "viewer",
}
ACTIONS: dict[tuple[str, str], tuple[str, str]] = {}
SHOWN_CUSTOMERS = 200
"""Customers a drill-down page lists (the CSV has them all)."""


def filter_fields(name: str) -> list[dict[str, Any]]:
    """The form fields of a report's filters, from its ``Params`` model: a choice for each
    literal or enum, a date, a number or a text field otherwise."""
    fields = []
    for key, info in REPORTS[name].Params.model_fields.items():
        choices = [c.value if hasattr(c, "value") else c for c in get_args(info.annotation)] if get_args(
            info.annotation) and all(isinstance(c, str) for c in get_args(info.annotation)) else None  # fmt: skip
        if choices is None and isinstance(info.annotation, type) and hasattr(info.annotation, "__members__"):
            choices = [m.value for m in info.annotation]  # type: ignore[attr-defined]
        kind = "date" if key in ("since", "until") else "number" if info.annotation in (int, int | None) else "text"
        label = key.replace("_", " ").capitalize()
        fields.append({"name": key, "label": label, "choices": choices, "type": kind})
    return fields


def _given(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k not in ("cell", "format") and v != ""}


def _display(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:.1f} %"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "seconds":
        hours = value / 3600
        return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h" if hours >= 1 else f"{value / 60:.0f} min"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return str(value)


def table(report: dict[str, Any], name: str, given: dict[str, str]) -> list[list[dict[str, Any]]]:
    """The report's rows as cells to show: text, and the drill-down link of a counted number."""
    shown = []
    for row in report["rows"]:
        cells = row.get("cells") or {}
        first_count = next((c["key"] for c in report["columns"] if c["kind"] == "count"), None)
        line = []
        for column in report["columns"]:
            key, kind = column["key"], column["kind"]
            cell = cells.get(key) or (row.get("cell") if key == first_count else None)
            link = None
            if cell and kind == "count" and row.get(key):
                link = f"/console/reports/{name}/customers?{urlencode(given | {'cell': cell})}"
            line.append(
                {"text": _display(row.get(key), kind), "link": link, "numeric": kind != "text" and kind != "period"}
            )
        shown.append(line)
    return shown


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/reports")
    async def reports_page(request: Request, staff: StaffDep) -> Response:
        kinds = await staff.api.get("/v1/reports")
        return render(request, "reports/index.html", {"reports": kinds.body if kinds.ok else []}, staff=staff)

    @routes.get("/console/reports/{name}")
    async def report_page(name: str, request: Request, staff: StaffDep) -> Response:
        if name not in REPORTS:
            return render(request, "error.html", {"heading": "No such report",
                          "message": f"There is no report named {name!r}."}, staff=staff, status=404)  # fmt: skip
        given = _given(request)
        answer, segments = await asyncio.gather(staff.api.get(f"/v1/reports/{name}", **given),
                                                staff.api.get("/v1/segments"))  # fmt: skip
        errors: dict[str, str] = {}
        report = None
        if answer.ok:
            report = answer.body
        elif answer.status == 422:
            errors = answer.field_errors() or {"$": answer.message}
        else:
            errors = {"$": f"The report could not be computed: {answer.message}"}
        values = dict((report or {}).get("filters") or {}) | given
        context = {
            "name": name, "kind": REPORTS[name], "report": report, "fields": filter_fields(name), "values": values,
            "errors": errors, "segments": [s["id"] for s in (segments.body if segments.ok else [])],
            "rows": table(report, name, given) if report else [],
            "csv": f"/v1/reports/{name}?{urlencode(given | {'format': 'csv'})}",
            "chart": None if report is None or report.get("chart") is None else report["chart"],
        }  # fmt: skip
        return render(request, "reports/report.html", context, staff=staff, status=200 if report else 422)

    @routes.get("/console/reports/{name}/customers")
    async def drill_page(name: str, request: Request, staff: StaffDep) -> Response:
        given = _given(request)
        cell = request.query_params.get("cell", "")
        answer = await staff.api.get(f"/v1/reports/{name}/customers", **(given | {"cell": cell}))
        found = answer.body if answer.ok else None
        context = {
            "name": name, "title": REPORTS[name].TITLE if name in REPORTS else name, "cell": cell, "found": found,
            "customers": (found or {}).get("customers", [])[:SHOWN_CUSTOMERS], "shown": SHOWN_CUSTOMERS,
            "error": None if answer.ok else answer.message, "back": f"/console/reports/{name}?{urlencode(given)}",
            "csv": f"/v1/reports/{name}/customers?{urlencode(given | {'cell': cell, 'format': 'csv'})}",
        }  # fmt: skip
        return render(
            request, "reports/customers.html", context, staff=staff, status=200 if answer.ok else answer.status
        )

    return routes
