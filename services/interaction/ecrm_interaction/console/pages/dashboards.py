"""Dashboards: saved reports arranged on one page (each with its chart, figures and first rows),
the form that makes one, and who receives it by email (subscribe, send now, stop)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.pages.reports import subscription_body, table
from ecrm_interaction.console.rendering import render

BASE = "/console/dashboards"
ONE = f"{BASE}/{{dashboard_id}}"
SUBSCRIPTION = "/console/report-subscriptions/{subscription_id}"
PAGES = {
    ("GET", f"{BASE}/new"): "marketer",
    ("POST", f"{BASE}/new"): "marketer",
    ("GET", ONE): "viewer",
    ("GET", f"{ONE}/panels/{{position}}"): "viewer",
    ("POST", f"{ONE}/delete"): "marketer",
    ("POST", f"{ONE}/subscribe"): "marketer",
    ("POST", f"{SUBSCRIPTION}/send"): "marketer",
    ("POST", f"{SUBSCRIPTION}/delete"): "marketer",
}
ACTIONS = {
    ("POST", f"{BASE}/new"): ("POST", "/v1/dashboards"),
    ("POST", f"{ONE}/delete"): ("DELETE", "/v1/dashboards/{dashboard_id}"),
    ("POST", f"{ONE}/subscribe"): ("POST", "/v1/report-subscriptions"),
    ("POST", f"{SUBSCRIPTION}/send"): ("POST", "/v1/report-subscriptions/{subscription_id}/send"),
    ("POST", f"{SUBSCRIPTION}/delete"): ("DELETE", "/v1/report-subscriptions/{subscription_id}"),
}
ROWS_SHOWN = 8
"""Rows of each report a dashboard shows (the report's page has them all)."""


def _back(fields: dict[str, str]) -> str:
    """Where a subscription's button returns: a console page the form named, else the reports."""
    back = fields.get("back", "")
    return back if back.startswith("/console/") and "//" not in back else "/console/reports"


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    async def form_page(request: Request, staff: Any, fields: dict[str, str], errors: dict[str, str],
                        status: int = 200) -> Response:  # fmt: skip
        saved = await staff.api.get("/v1/saved-reports")
        context = {"fields": fields, "errors": errors, "saved": saved.body if saved.ok else []}
        return render(request, "dashboards/new.html", context, staff=staff, status=status)

    @routes.get(f"{BASE}/new")
    async def new_page(request: Request, staff: StaffDep) -> Response:
        return await form_page(request, staff, {}, {})

    @routes.post(f"{BASE}/new")
    async def create(request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        chosen = [k[len("report.") :] for k, v in fields.items() if k.startswith("report.") and v == "on"]
        body = {"name": fields.get("name", "").strip(), "description": fields.get("description", "").strip(),
                "reports": chosen}  # fmt: skip
        answer = await api.call("POST", "/v1/dashboards", json=body)
        if answer.ok:
            return RedirectResponse(f"{BASE}/{answer.body['id']}", status_code=303)
        return await form_page(request, staff, fields, answer.field_errors() or {"$": answer.message}, status=422)

    @routes.get(ONE)
    async def dashboard(dashboard_id: str, request: Request, staff: StaffDep) -> Response:
        answer = await staff.api.get(f"/v1/dashboards/{dashboard_id}")
        if not answer.ok:
            return render(request, "error.html", {"heading": "Dashboard", "message": "There is no such dashboard."},
                          staff=staff, status=answer.status)  # fmt: skip
        board = answer.body
        subscribed = await staff.api.get("/v1/report-subscriptions", target="dashboard", target_id=dashboard_id)
        panels = [{"saved": saved, "position": i} for i, saved in enumerate(board["reports"])]
        context = {"board": board, "panels": panels, "subscriptions": subscribed.body if subscribed.ok else [],
                   "notice": request.query_params.get("done", "")}  # fmt: skip
        return render(request, "dashboards/show.html", context, staff=staff)

    @routes.get(f"{ONE}/panels/{{position}}")
    async def panel(dashboard_id: str, position: int, request: Request, staff: StaffDep) -> Response:
        """One saved report of the dashboard, computed now: the page asks for each (htmx, once
        loaded), so it answers at once however many reports it shows."""
        answer = await staff.api.get(f"/v1/dashboards/{dashboard_id}")
        reports = answer.body["reports"] if answer.ok else []
        if not 0 <= position < len(reports):
            return render(request, "error.html", {"heading": "Dashboard", "message": "There is no such panel."},
                          staff=staff, status=404)  # fmt: skip
        saved = reports[position]
        result = await staff.api.get(f"/v1/saved-reports/{saved['id']}/result")
        report = result.body if result.ok else None
        shown = dict(report, rows=report["rows"][:ROWS_SHOWN]) if report else None
        context = {"saved": saved, "report": report, "id": f"chart-{position}",
                   "more": len(report["rows"]) - ROWS_SHOWN if report else 0,
                   "rows": table(shown, saved["report"], {}) if shown else [],
                   "error": None if result.ok else result.message}  # fmt: skip
        return render(
            request, "dashboards/panel.html", context, staff=staff, status=200 if result.ok else result.status
        )

    @routes.post(f"{ONE}/delete")
    async def delete(dashboard_id: str, request: Request, staff: StaffDep) -> Response:
        _fields, api = await staff.posted(request)
        answer = await api.call("DELETE", f"/v1/dashboards/{dashboard_id}")
        if answer.ok:
            return RedirectResponse("/console/reports", status_code=303)
        return render(request, "error.html", {"heading": "Could not delete the dashboard", "message": answer.message},
                      staff=staff, status=answer.status)  # fmt: skip

    @routes.post(f"{ONE}/subscribe")
    async def subscribe(dashboard_id: str, request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call("POST", "/v1/report-subscriptions",
                                json=subscription_body(fields, "dashboard", dashboard_id))  # fmt: skip
        if answer.ok:
            return RedirectResponse(f"{BASE}/{dashboard_id}?done=subscribed", status_code=303)
        message = "; ".join(f"{k}: {v}" for k, v in answer.field_errors().items()) or answer.message
        return render(request, "error.html", {"heading": "Could not subscribe", "message": message}, staff=staff,
                      status=answer.status)  # fmt: skip

    @routes.post(f"{SUBSCRIPTION}/send")
    async def send_now(subscription_id: str, request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call("POST", f"/v1/report-subscriptions/{subscription_id}/send")
        if answer.ok:
            return RedirectResponse(f"{_back(fields)}?done=sent", status_code=303)
        return render(request, "error.html", {"heading": "Could not send it", "message": answer.message}, staff=staff,
                      status=answer.status)  # fmt: skip

    @routes.post(f"{SUBSCRIPTION}/delete")
    async def stop(subscription_id: str, request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call("DELETE", f"/v1/report-subscriptions/{subscription_id}")
        if answer.ok:
            return RedirectResponse(f"{_back(fields)}?done=stopped", status_code=303)
        return render(request, "error.html", {"heading": "Could not stop it", "message": answer.message}, staff=staff,
                      status=answer.status)  # fmt: skip

    return routes
