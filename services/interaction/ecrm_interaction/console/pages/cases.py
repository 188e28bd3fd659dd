"""Cases: the support agent's queue (by SLA and priority, overdue first), a case with the
customer's context beside it, and the forms that work it (assign, note, status, priority, open)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import Staff, StaffDep
from ecrm_interaction.console.api import Answer, ConsoleApi
from ecrm_interaction.console.pages.assistant import conversation_context
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/cases"): "viewer",
    ("GET", "/console/cases/new"): "agent",
    ("POST", "/console/cases"): "agent",
    ("GET", "/console/cases/{case_id}"): "viewer",
    ("POST", "/console/cases/{case_id}"): "agent",
    ("POST", "/console/cases/{case_id}/notes"): "agent",
}
ACTIONS = {
    ("POST", "/console/cases"): ("POST", "/v1/cases"),
    ("POST", "/console/cases/{case_id}"): ("PATCH", "/v1/cases/{case_id}"),
    ("POST", "/console/cases/{case_id}/notes"): ("POST", "/v1/cases/{case_id}/notes"),
}

PAGE_SIZE = 25
STATUSES = ("open", "pending", "resolved")
PRIORITIES = ("urgent", "high", "normal", "low")
QUEUE_STATUSES = {"": "open,pending", "open": "open", "pending": "pending", "resolved": "resolved", "all": ""}
"""The queue's status filter → the API's ``status`` (by default the cases still to work)."""
CHANGES = ("status", "priority", "assignee")


def _queue_params(staff: Staff, status: str, assignee: str, priority: str) -> dict[str, Any]:
    params: dict[str, Any] = {"order": "queue", "status": QUEUE_STATUSES.get(status, "open,pending")}
    if assignee == "mine":
        params["assignee"] = staff.name
    elif assignee == "unassigned":
        params["unassigned"] = "true"
    elif assignee:
        params["assignee"] = assignee
    if priority:
        params["priority"] = priority
    return params


def _named(answer: Answer, fields: tuple[str, ...]) -> dict[str, str]:
    """The API's refusal as inline messages: at each field of the form it names, else the form's."""
    named = {k: v for k, v in answer.field_errors().items() if k in fields}
    return named or {"$": answer.message or f"the change was refused ({answer.status})"}


def _overdue(case: dict[str, Any], now: datetime) -> bool:
    return case["status"] != "resolved" and datetime.fromisoformat(case["sla_due_at"]) < now


async def _context(api: ConsoleApi, customer_id: str, case_id: str) -> dict[str, Any]:
    """The customer beside the case: their summary, latest decisions, other cases (API reads)."""
    customer, decisions = await asyncio.gather(
        api.get(f"/v1/customers/{customer_id}"), api.get("/v1/decisions", customer_id=customer_id, limit=10)
    )
    view: dict[str, Any] = customer.body if customer.ok else {}
    profile = view.get("profile") or {}
    traits: dict[str, Any] = profile["traits"] if isinstance(profile.get("traits"), dict) else {}
    events = view.get("recent_events")
    messages = view.get("messages") or {}
    sent = sorted(
        [m for kind in ("sent", "failed", "suppressed") for m in messages.get(kind, [])],
        key=lambda m: str(m.get("created_at") or ""), reverse=True,
    )  # fmt: skip
    return {
        "known": customer.ok,
        "email": (view.get("contact") or {}).get("email"),
        "traits": dict(list(traits.items())[:8]),
        "scores": view.get("scores") or {},
        "segments": view.get("segments") or [],
        "loyalty": view.get("loyalty") or {},
        "events": events[:10] if isinstance(events, list) else [],
        "events_error": events.get("error") if isinstance(events, dict) else None,
        "messages": sent[:5],
        "decisions": decisions.body[:10] if decisions.ok and isinstance(decisions.body, list) else [],
        "other_cases": [c for c in view.get("cases") or [] if c["id"] != case_id][:10],
    }


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/cases")
    async def queue(
        request: Request, staff: StaffDep, status: str = "", assignee: str = "", priority: str = "", page: int = 1
    ) -> Response:
        page = max(page, 1)
        params = _queue_params(staff, status, assignee, priority)
        listed, summary = await asyncio.gather(
            staff.api.get("/v1/cases", **params, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE),
            staff.api.get("/v1/cases/summary"),
        )
        cases = listed.body[:PAGE_SIZE] if listed.ok else []
        now = datetime.now(UTC)
        filters = {"status": status, "assignee": assignee, "priority": priority}
        kept = {k: v for k, v in filters.items() if v}
        more = listed.ok and len(listed.body) > PAGE_SIZE
        context = {
            "cases": [dict(c, overdue=_overdue(c, now)) for c in cases],
            "refused": None if listed.ok else listed.field_errors() or {"$": listed.message},
            "summary": summary.body if summary.ok else {},
            "filters": filters,
            "page": page,
            "previous": f"/console/cases?{urlencode(kept | {'page': page - 1})}" if page > 1 else None,
            "next": f"/console/cases?{urlencode(kept | {'page': page + 1})}" if more else None,
            "priorities": PRIORITIES,
        }  # fmt: skip
        return render(request, "cases/queue.html", context, staff=staff)

    @routes.get("/console/cases/new")
    async def new_case(request: Request, staff: StaffDep, customer_id: str = "") -> Response:
        typed = {"customer_id": customer_id, "subject": "", "priority": "normal", "sla_hours": "24", "assignee": ""}
        return render(request, "cases/new.html", {"typed": typed, "errors": {}, "priorities": PRIORITIES}, staff=staff)

    @routes.post("/console/cases")
    async def open_case(request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        typed = {k: fields.get(k, "").strip() for k in ("customer_id", "subject", "priority", "sla_hours", "assignee")}
        body: dict[str, Any] = {k: v for k, v in typed.items() if k != "assignee"}
        body["assignee"] = typed["assignee"] or None
        answer = await api.call("POST", "/v1/cases", json=body)
        if answer.ok:
            return RedirectResponse(f"/console/cases/{answer.body['id']}", status_code=303)
        errors = _named(answer, tuple(typed))
        context = {"typed": typed, "errors": errors, "priorities": PRIORITIES}
        return render(request, "cases/new.html", context, staff=staff, status=answer.status)

    async def case_page(
        request: Request, staff: StaffDep, case_id: str, errors: dict[str, dict[str, str]], typed: dict[str, str],
        status: int = 200,
    ) -> Response:  # fmt: skip
        found, summary = await asyncio.gather(staff.api.get(f"/v1/cases/{case_id}"), staff.api.get("/v1/cases/summary"))
        if not found.ok:
            message = "No case has this id." if found.status == 404 else found.message
            return render(request, "error.html", {"heading": "Case not found", "message": message},
                          staff=staff, status=found.status)  # fmt: skip
        case = found.body
        chats = await staff.api.get("/v1/conversations", case_id=case_id, limit=1)
        chat = await conversation_context(staff, chats.body[0]["id"]) if chats.ok and chats.body else None
        context = {
            "chat": chat,
            "case": dict(case, overdue=_overdue(case, datetime.now(UTC))),
            "customer": await _context(staff.api, case["customer_id"], case_id),
            "escalation_email": (summary.body or {}).get("escalation_email") if summary.ok else None,
            "errors": errors,
            "typed": typed,
            "statuses": STATUSES,
            "priorities": PRIORITIES,
        }
        return render(request, "cases/case.html", context, staff=staff, status=status)

    @routes.get("/console/cases/{case_id}")
    async def show_case(request: Request, staff: StaffDep, case_id: str) -> Response:
        return await case_page(request, staff, case_id, {}, {})

    @routes.post("/console/cases/{case_id}")
    async def change_case(request: Request, staff: StaffDep, case_id: str) -> Response:
        """One form (assign, status or priority) → one ``PATCH``: the fields it sent, an empty
        assignee meaning nobody; ``form`` names which form it was, for its inline errors."""
        fields, api = await staff.posted(request)
        form = fields.get("form", "change")
        change: dict[str, Any] = {k: fields[k].strip() for k in CHANGES if k in fields}
        if "assignee" in change:
            change["assignee"] = (staff.name if change["assignee"] == "me" else change["assignee"]) or None
        answer = await api.call("PATCH", f"/v1/cases/{case_id}", json=change)
        if answer.ok:
            return RedirectResponse(f"/console/cases/{case_id}", status_code=303)
        return await _refused(request, staff, case_id, form, fields, answer)

    @routes.post("/console/cases/{case_id}/notes")
    async def add_note(request: Request, staff: StaffDep, case_id: str) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call("POST", f"/v1/cases/{case_id}/notes", json={"text": fields.get("text", "").strip()})
        if answer.ok:
            return RedirectResponse(f"/console/cases/{case_id}#notes", status_code=303)
        return await _refused(request, staff, case_id, "note", fields, answer)

    async def _refused(
        request: Request, staff: StaffDep, case_id: str, form: str, fields: dict[str, str], answer: Answer
    ) -> Response:
        errors = {form: _named(answer, (*CHANGES, "text"))}
        if answer.status == 404:
            return render(request, "error.html", {"heading": "Case not found", "message": "No case has this id."},
                          staff=staff, status=404)  # fmt: skip
        return await case_page(request, staff, case_id, errors, fields, status=answer.status)

    return routes
