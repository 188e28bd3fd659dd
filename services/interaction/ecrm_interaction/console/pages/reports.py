"""Reports: the list with each report's definition, a report with its filters, chart and table
(each number a link to the customers behind it), and those customers."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/reports"): "viewer",
    ("GET", "/console/reports/{name}"): "viewer",
    ("GET", "/console/reports/{name}/customers"): "viewer",
    ("POST", "/console/reports/{name}/save"): "marketer",
    ("GET", "/console/saved-reports/{saved_report_id}"): "viewer",
    ("POST", "/console/saved-reports/{saved_report_id}/delete"): "marketer",
    ("POST", "/console/saved-reports/{saved_report_id}/subscribe"): "marketer",
}
ACTIONS = {
    ("POST", "/console/reports/{name}/save"): ("POST", "/v1/saved-reports"),
    ("POST", "/console/saved-reports/{saved_report_id}/delete"): ("DELETE", "/v1/saved-reports/{report_id}"),
    ("POST", "/console/saved-reports/{saved_report_id}/subscribe"): ("POST", "/v1/report-subscriptions"),
}
SHOWN_CUSTOMERS = 200
"""Customers a drill-down page lists (the CSV has them all)."""


def filter_fields(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The form fields of a report's filters, from their JSON Schema (``GET /v1/reports``): a
    choice for each enumeration, a date, a number or a text field otherwise."""
    definitions = parameters.get("$defs", {})
    fields = []
    for key, spec in parameters.get("properties", {}).items():
        spec = definitions.get(spec.get("$ref", "").rsplit("/", 1)[-1], {}) | spec if "$ref" in spec else spec
        options = [o for o in spec.get("anyOf", [spec]) if o.get("type") != "null"] or [spec]
        shape = options[0]
        kind = "date" if shape.get("format") == "date" else "number" if shape.get("type") == "integer" else "text"
        fields.append({"name": key, "label": key.replace("_", " ").capitalize(), "choices": shape.get("enum"),
                       "type": kind, "help": spec.get("description", "")})  # fmt: skip
    return fields


def _as_query(filters: dict[str, Any]) -> dict[str, str]:
    """A report's filters (as its answer repeats them) as query parameters."""
    return {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in filters.items() if v not in (None, "")}


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


def subscription_body(fields: dict[str, str], target: str, target_id: str) -> dict[str, Any]:
    """The subscription a form asks for: its addresses (one a line, or comma-separated)."""
    recipients = [a.strip() for a in fields.get("recipients", "").replace(",", "\n").splitlines() if a.strip()]
    hour = fields.get("hour", "").strip()
    return {"target": target, "target_id": target_id, "recipients": recipients,
            "cadence": fields.get("cadence") or "weekly",
            "hour": int(hour) if hour.isdigit() else hour or 7}  # fmt: skip


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/reports")
    async def reports_page(request: Request, staff: StaffDep) -> Response:
        kinds, saved, boards = await asyncio.gather(staff.api.get("/v1/reports"), staff.api.get("/v1/saved-reports"),
                                                    staff.api.get("/v1/dashboards"))  # fmt: skip
        context = {"reports": kinds.body if kinds.ok else [], "saved": saved.body if saved.ok else [],
                   "dashboards": boards.body if boards.ok else [],
                   "notice": request.query_params.get("done", "")}  # fmt: skip
        return render(request, "reports/index.html", context, staff=staff)

    @routes.post("/console/reports/{name}/save")
    async def save_report(name: str, request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        days = fields.pop("days", "").strip()
        rolling = fields.pop("rolling", "") == "on"
        title = fields.pop("save_name", "").strip()
        params = {k[len("f.") :]: v for k, v in fields.items() if k.startswith("f.") and v != ""}
        body: dict[str, Any] = {"name": title, "report": name, "params": params}
        if rolling:
            body["days"] = days or None
        answer = await api.call("POST", "/v1/saved-reports", json=body)
        if answer.ok:
            return RedirectResponse(f"/console/saved-reports/{answer.body['id']}", status_code=303)
        errors = {
            ("save_name" if k == "name" else k): v for k, v in (answer.field_errors() or {"$": answer.message}).items()
        }
        return await show(request, staff, name, params, save_errors=errors, status=422)

    @routes.get("/console/saved-reports/{saved_report_id}")
    async def saved_report(saved_report_id: str, request: Request, staff: StaffDep) -> Response:
        answer = await staff.api.get(f"/v1/saved-reports/{saved_report_id}")
        if not answer.ok:
            missing = {"heading": "Saved report", "message": "There is no such saved report."}
            return render(request, "error.html", missing, staff=staff, status=answer.status)
        saved = answer.body
        result, subscribed = await asyncio.gather(
            staff.api.get(f"/v1/saved-reports/{saved_report_id}/result"),
            staff.api.get("/v1/report-subscriptions", target="report", target_id=saved_report_id),
        )  # fmt: skip
        given = {
            **{k: str(v) for k, v in saved["params"].items()},
            **_as_query(result.body["filters"] if result.ok else {}),
        }
        return await show(request, staff, saved["report"], given, saved=saved,
                          subscriptions=subscribed.body if subscribed.ok else [])  # fmt: skip

    @routes.post("/console/saved-reports/{saved_report_id}/delete")
    async def delete_saved(saved_report_id: str, request: Request, staff: StaffDep) -> Response:
        _fields, api = await staff.posted(request)
        answer = await api.call("DELETE", f"/v1/saved-reports/{saved_report_id}")
        if answer.ok:
            return RedirectResponse("/console/reports?done=deleted", status_code=303)
        refusal = {"heading": "Could not delete the saved report", "message": answer.message}
        return render(request, "error.html", refusal, staff=staff, status=answer.status)

    @routes.post("/console/saved-reports/{saved_report_id}/subscribe")
    async def subscribe_saved(saved_report_id: str, request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call(
            "POST", "/v1/report-subscriptions", json=subscription_body(fields, "report", saved_report_id)
        )
        if answer.ok:
            return RedirectResponse(f"/console/saved-reports/{saved_report_id}", status_code=303)
        message = "; ".join(f"{k}: {v}" for k, v in answer.field_errors().items()) or answer.message
        return render(request, "error.html", {"heading": "Could not subscribe", "message": message}, staff=staff,
                      status=answer.status)  # fmt: skip

    @routes.get("/console/reports/{name}")
    async def report_page(name: str, request: Request, staff: StaffDep) -> Response:
        return await show(request, staff, name, _given(request))

    async def show(
        request: Request, staff: Any, name: str, given: dict[str, str], *, saved: dict[str, Any] | None = None,
        subscriptions: list[dict[str, Any]] | None = None, save_errors: dict[str, str] | None = None,
        status: int | None = None,
    ) -> Response:  # fmt: skip
        kinds, answer, segments = await asyncio.gather(staff.api.get("/v1/reports"),
                                                       staff.api.get(f"/v1/reports/{name}", **given),
                                                       staff.api.get("/v1/segments"))  # fmt: skip
        kind = next((k for k in (kinds.body if kinds.ok else []) if k["name"] == name), None)
        if kind is None:
            return render(request, "error.html", {"heading": "No such report",
                          "message": f"There is no report named {name!r}."}, staff=staff, status=404)  # fmt: skip
        errors: dict[str, str] = {}
        report = None
        if answer.ok:
            report = answer.body
        elif answer.status == 422:
            errors = answer.field_errors() or {"$": answer.message}
        else:
            errors = {"$": f"The report could not be computed: {answer.message}"}
        values = dict((report or {}).get("filters") or {}) | given
        filters = (report or {}).get("filters") or {}
        span = 30
        if filters.get("since") and filters.get("until"):
            span = (date.fromisoformat(filters["until"]) - date.fromisoformat(filters["since"])).days + 1
        context = {
            "name": name, "kind": kind, "report": report, "fields": filter_fields(kind["parameters"]), "values": values,
            "errors": errors, "segments": [s["id"] for s in (segments.body if segments.ok else [])],
            "rows": table(report, name, given) if report else [],
            "csv": f"/v1/reports/{name}?{urlencode(given | {'format': 'csv'})}",
            "chart": None if report is None or report.get("chart") is None else report["chart"],
            "given": {k: v for k, v in given.items() if k not in ("since", "until")} | (
                {"since": filters["since"], "until": filters["until"]} if filters else {}),
            "span": span, "saved": saved, "subscriptions": subscriptions or [], "save_errors": save_errors or {},
        }  # fmt: skip
        return render(request, "reports/report.html", context, staff=staff, status=status or (200 if report else 422))

    @routes.get("/console/reports/{name}/customers")
    async def drill_page(name: str, request: Request, staff: StaffDep) -> Response:
        given = _given(request)
        cell = request.query_params.get("cell", "")
        answer = await staff.api.get(f"/v1/reports/{name}/customers", **(given | {"cell": cell}))
        found = answer.body if answer.ok else None
        context = {
            "name": name, "title": name.capitalize(), "cell": cell, "found": found,
            "customers": (found or {}).get("customers", [])[:SHOWN_CUSTOMERS], "shown": SHOWN_CUSTOMERS,
            "error": None if answer.ok else answer.message, "back": f"/console/reports/{name}?{urlencode(given)}",
            "csv": f"/v1/reports/{name}/customers?{urlencode(given | {'cell': cell, 'format': 'csv'})}",
        }  # fmt: skip
        return render(
            request, "reports/customers.html", context, staff=staff, status=200 if answer.ok else answer.status
        )

    return routes
