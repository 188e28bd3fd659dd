"""Customers: the searchable list and the Customer 360 (identity, scores and how they were
computed, segments, consent and suppression, the timeline with its reasons, every email with
its copy and fate, loyalty, cases), with its actions: add a note (on one of the customer's
cases: notes belong to cases), open a case, change consent, lift a suppression, export, erase.

Each form posts to a console route that makes one API call; a refusal (422) re-renders the 360
with what was typed and the API's message next to the field; success redirects back (303).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.api.services.score_explanations import RFM_SEGMENT_NAMES
from ecrm_interaction.console.access import Staff, StaffDep
from ecrm_interaction.console.api import Answer, ConsoleApi
from ecrm_interaction.console.rendering import render

BASE = "/console/customers"
ONE = BASE + "/{customer_id}"
PAGES = {
    ("GET", BASE): "viewer",
    ("GET", ONE): "viewer",
    ("POST", ONE + "/notes"): "agent",
    ("POST", ONE + "/cases"): "agent",
    ("POST", ONE + "/consent"): "marketer",
    ("POST", ONE + "/suppression/lift"): "admin",
    ("GET", ONE + "/export"): "admin",
    ("GET", ONE + "/erase"): "admin",
    ("POST", ONE + "/erase"): "admin",
}
ACTIONS = {
    ("POST", ONE + "/notes"): ("POST", "/v1/cases/{case_id}/notes"),
    ("POST", ONE + "/cases"): ("POST", "/v1/cases"),
    ("POST", ONE + "/consent"): ("PUT", "/v1/customers/{customer_id}/consent/{channel}"),
    ("POST", ONE + "/suppression/lift"): ("POST", "/v1/suppressions/lift"),
    ("POST", ONE + "/erase"): ("DELETE", "/v1/customers/{customer_id}"),
}

STAGES = ("prospect", "new", "active", "at_risk", "churned")
FILTERS = ("q", "trait", "segment", "stage", "rfm", "tier")
PAGE_SIZE = 25
CHANNELS = ("email", "sms", "push", "webhook")


def _href(customer_id: str, anchor: str = "") -> str:
    return f"{BASE}/{quote(customer_id, safe='')}" + (f"#{anchor}" if anchor else "")


def _unavailable(answer: Answer) -> str | None:
    """Why a read did not answer, in words (None when it did)."""
    if answer.ok:
        return None
    if answer.status == 503 and answer.error_code == "clickhouse_unavailable":
        return "ClickHouse is not available: this part needs the warehouse."
    return f"The API answered {answer.status}: {answer.message}"


async def _options(api: ConsoleApi) -> dict[str, Any]:
    segments, program = await asyncio.gather(api.get("/v1/segments"), api.get("/v1/loyalty/program"))
    return {
        "segments": [("", "any segment")] + [(s["id"], s["name"]) for s in (segments.body or []) if segments.ok],
        "stages": [("", "any stage")] + [(s, s.replace("_", " ")) for s in STAGES],
        "rfms": [("", "any RFM cell")] + [(s, s.replace("_", " ")) for s in RFM_SEGMENT_NAMES],
        "tiers": [("", "any tier")] + [(t["name"], t["name"]) for t in (program.body or {}).get("tiers", [])],
    }


def _errors_of(answer: Answer, fields: dict[str, str]) -> dict[str, str]:
    """The API's refusal as inline messages: each named field, else the form as a whole."""
    named = answer.field_errors()
    errors = {name: message for name, message in named.items() if name in fields}
    if not errors:
        errors["$"] = answer.message or f"The API refused this ({answer.status})."
    return errors


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get(BASE)
    async def customer_list(request: Request, staff: StaffDep) -> Response:
        wanted = {name: request.query_params.get(name, "").strip() for name in FILTERS}
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            offset = 0
        answer, options = await asyncio.gather(
            staff.api.get("/v1/customers", **wanted, limit=PAGE_SIZE, offset=offset), _options(staff.api)
        )
        errors = answer.field_errors() if answer.status == 422 else {}
        body = answer.body if answer.ok else {}

        def page(at: int | None) -> str | None:
            if at is None:
                return None
            return f"{BASE}?{urlencode({**{k: v for k, v in wanted.items() if v}, 'offset': at})}"

        context = {
            "wanted": wanted,
            "customers": body.get("customers", []),
            "problem": None if answer.ok or errors else _unavailable(answer),
            "errors": errors,
            "next_page": page(body.get("next_offset")),
            "previous_page": page(max(0, offset - PAGE_SIZE)) if offset > 0 else None,
            "offset": offset,
            "erased": request.query_params.get("erased"),
            "href": _href,
            **options,
        }
        status = 422 if errors else 200
        if request.headers.get("hx-request"):
            context["fragment"] = True
            return render(request, "customers/_results.html", context, staff=staff, status=status)
        return render(request, "customers/list.html", context, staff=staff, status=status)

    async def customer_page(
        request: Request, staff: Staff, customer_id: str, forms: dict[str, dict[str, Any]] | None = None
    ) -> Response:
        path = quote(customer_id, safe="")
        view, identity, timeline, messages = await asyncio.gather(
            staff.api.get(f"/v1/customers/{path}", events=0),  # the timeline has them
            staff.api.get(f"/v1/customers/{path}/identity"),
            staff.api.get(f"/v1/customers/{path}/timeline", limit=50),
            staff.api.get(f"/v1/customers/{path}/messages", limit=20),
        )
        if view.status == 404:
            return render(
                request, "error.html",
                {"heading": "No such customer", "message": f"Nothing is known of the customer {customer_id!r}."},
                staff=staff, status=404,
            )  # fmt: skip
        customer = view.body or {}
        open_cases = [c for c in customer.get("cases", []) if c.get("status") != "resolved"]
        context = {
            "customer_id": customer_id,
            "c": customer,
            "traits": (customer.get("profile") or {}).get("traits") or {},
            "profile": customer.get("profile") or {},
            "identity": identity.body if identity.ok else None,
            "identity_problem": _unavailable(identity),
            "timeline": (timeline.body or {}).get("items", []) if timeline.ok else [],
            "timeline_problem": (timeline.body or {}).get("warehouse") if timeline.ok else _unavailable(timeline),
            "messages": (messages.body or {}).get("messages", []) if messages.ok else [],
            "messages_problem": (messages.body or {}).get("warehouse") if messages.ok else _unavailable(messages),
            "rendered_note": (messages.body or {}).get("rendered_note", ""),
            "case_options": [(c["id"], f"{c['subject']} ({c['status']})") for c in open_cases],
            "channels": CHANNELS,
            "forms": forms or {},
            "href": _href,
        }
        status = 422 if forms else 200
        return render(request, "customers/one.html", context, staff=staff, status=status)

    @routes.get(ONE)
    async def customer_360(request: Request, staff: StaffDep, customer_id: str) -> Response:
        return await customer_page(request, staff, customer_id)

    async def refused(
        request: Request, staff: Staff, customer_id: str, form: str, fields: dict[str, str], errors: dict[str, str]
    ) -> Response:
        return await customer_page(request, staff, customer_id, {form: {"values": fields, "errors": errors}})

    def back(customer_id: str, anchor: str) -> Response:
        return RedirectResponse(_href(customer_id, anchor), status_code=303)

    @routes.post(ONE + "/notes")
    async def add_note(request: Request, staff: StaffDep, customer_id: str) -> Response:
        fields, api = await staff.posted(request)
        case_id = fields.get("case_id", "").strip()
        if not case_id:
            errors = {"case_id": "choose one of the customer's open cases (or open a case first)"}
            return await refused(request, staff, customer_id, "note", fields, errors)
        answer = await api.call("POST", f"/v1/cases/{quote(case_id, safe='')}/notes",
                                json={"text": fields.get("text", "")})  # fmt: skip
        if not answer.ok:
            return await refused(request, staff, customer_id, "note", fields, _errors_of(answer, fields))
        return back(customer_id, "cases")

    @routes.post(ONE + "/cases")
    async def open_case(request: Request, staff: StaffDep, customer_id: str) -> Response:
        fields, api = await staff.posted(request)
        case = {"customer_id": customer_id, "subject": fields.get("subject", ""),
                "priority": fields.get("priority", "normal"), "sla_hours": fields.get("sla_hours", "24")}  # fmt: skip
        answer = await api.call("POST", "/v1/cases", json=case)
        if not answer.ok:
            return await refused(request, staff, customer_id, "case", fields, _errors_of(answer, fields))
        return back(customer_id, "cases")

    @routes.post(ONE + "/consent")
    async def change_consent(request: Request, staff: StaffDep, customer_id: str) -> Response:
        fields, api = await staff.posted(request)
        channel = fields.get("channel", "")
        if not re.fullmatch(r"[a-z]{1,20}", channel):
            return await refused(request, staff, customer_id, "consent", fields, {"channel": "choose a channel"})
        consent = {"granted": fields.get("granted", ""), "purpose": fields.get("purpose", "marketing")}
        answer = await api.call("PUT", f"/v1/customers/{quote(customer_id, safe='')}/consent/{channel}", json=consent)
        if not answer.ok:
            return await refused(request, staff, customer_id, "consent", fields, _errors_of(answer, fields))
        return back(customer_id, "contact")

    @routes.post(ONE + "/suppression/lift")
    async def lift_suppression(request: Request, staff: StaffDep, customer_id: str) -> Response:
        fields, api = await staff.posted(request)
        lift = {"address_digest": fields.get("address_digest", ""), "reason": fields.get("reason", "")}
        answer = await api.call("POST", "/v1/suppressions/lift", json=lift)
        if not answer.ok:
            return await refused(request, staff, customer_id, "lift", fields, _errors_of(answer, fields))
        return back(customer_id, "contact")

    @routes.get(ONE + "/export")
    async def export(request: Request, staff: StaffDep, customer_id: str) -> Response:
        answer = await staff.api.call("GET", f"/v1/customers/{quote(customer_id, safe='')}/export")
        if not answer.ok:
            message = _unavailable(answer) or ""
            return render(request, "error.html", {"heading": "Export failed", "message": message},
                          staff=staff, status=answer.status)  # fmt: skip
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", customer_id)[:80] or "customer"
        return Response(
            answer.text,
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="customer-{filename}.json"',
                     "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip

    @routes.get(ONE + "/erase")
    async def erase_page(request: Request, staff: StaffDep, customer_id: str) -> Response:
        context = {"customer_id": customer_id, "errors": {}, "typed": "", "href": _href}
        return render(request, "customers/erase.html", context, staff=staff)

    @routes.post(ONE + "/erase")
    async def erase(request: Request, staff: StaffDep, customer_id: str) -> Response:
        fields, api = await staff.posted(request)
        typed = fields.get("confirm", "")
        context: dict[str, Any] = {"customer_id": customer_id, "typed": typed, "href": _href}
        if typed.strip() != customer_id:
            context["errors"] = {"confirm": "type the customer's id exactly to confirm the erasure"}
            return render(request, "customers/erase.html", context, staff=staff, status=422)
        answer = await api.call("DELETE", f"/v1/customers/{quote(customer_id, safe='')}")
        if not answer.ok:
            context["errors"] = {"$": _unavailable(answer) or answer.message}
            return render(request, "customers/erase.html", context, staff=staff, status=answer.status)
        return RedirectResponse(f"{BASE}?{urlencode({'erased': customer_id})}", status_code=303)

    return routes
