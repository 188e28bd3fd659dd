"""Broadcasts: the list; the form (segment, one template or A/B variants with shares, holdout,
winner metric, rate, start time); the detail page with the real audience (after the contact
policy, by reason excluded), progress, pause/resume/cancel and the A/B results with the
winner and its uncertainty. Every read and change is a call of ``/v1/broadcasts``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.api import Answer, ConsoleApi
from ecrm_interaction.console.rendering import render

BASE = "/console/broadcasts"
ONE = f"{BASE}/{{broadcast_id}}"
API_ONE = "/v1/broadcasts/{broadcast_id}"
CONTROLS = ("schedule", "pause", "resume", "cancel", "audience")
"""The buttons of a broadcast, each the API's ``POST`` of that name (``audience``: count a draft's again)."""

PAGES = {
    ("GET", BASE): "viewer",
    ("GET", f"{BASE}/new"): "marketer",
    ("POST", f"{BASE}/new"): "marketer",
    ("GET", ONE): "viewer",
    ("GET", f"{ONE}/edit"): "marketer",
    ("POST", f"{ONE}/edit"): "marketer",
    **{("POST", f"{ONE}/{control}"): "marketer" for control in CONTROLS},
}
ACTIONS = {
    ("POST", f"{BASE}/new"): ("POST", "/v1/broadcasts"),
    ("POST", f"{ONE}/edit"): ("PUT", API_ONE),
    **{("POST", f"{ONE}/{control}"): ("POST", f"{API_ONE}/{control}") for control in CONTROLS},
}
SLOTS = ("a", "b", "c")
"""The form's variant rows: A is the template of a broadcast without variants."""
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def body_of(fields: dict[str, str]) -> dict[str, Any]:
    """The API's body from the form: one template (A), or variants A, B (and C) with their shares."""
    chosen = [(slot, fields.get(f"template_{slot}", "").strip()) for slot in SLOTS]
    chosen = [(slot, template) for slot, template in chosen if template]
    body: dict[str, Any] = {
        "name": fields.get("name", ""), "segment_id": fields.get("segment_id", "").strip(),
        "holdout_percent": fields.get("holdout_percent") or 0, "winner_metric": fields.get("winner_metric", "clicks"),
        "rate_per_minute": fields.get("rate_per_minute") or 1000,
    }  # fmt: skip
    when = fields.get("scheduled_at", "").strip()
    if when:  # a datetime-local value is in UTC here (the form says so)
        body["scheduled_at"] = f"{when}Z" if _LOCAL_TIME.match(when) else when
    if len(chosen) <= 1:
        body["template_id"] = chosen[0][1] if chosen else None
    else:
        even = 100 // len(chosen)
        body["variants"] = [
            {"name": slot.upper(), "template": template,
             "share": fields.get(f"share_{slot}") or (even + 100 - even * len(chosen) if i == 0 else even)}
            for i, (slot, template) in enumerate(chosen)
        ]  # fmt: skip
    return body


def form_errors(answer: Answer, fields: dict[str, str]) -> dict[str, str]:
    """The API's refusals under the form's field names."""
    slots = [slot for slot in SLOTS if fields.get(f"template_{slot}", "").strip()]
    named: dict[str, str] = {}
    for path, message in answer.field_errors().items():
        parts = path.split(".")
        if path == "template_id":
            key = "template_a"
        elif parts[0] == "variants" and len(parts) >= 3 and parts[1].isdigit() and int(parts[1]) < len(slots):
            key = f"{'share' if parts[2] == 'share' else 'template'}_{slots[int(parts[1])]}"
        elif parts[0] == "variants":
            key = "share_a"
        else:
            key = path
        named.setdefault(key, message)
    return named or {"$": answer.message or "the broadcast could not be saved"}


def fields_of(broadcast: dict[str, Any]) -> dict[str, str]:
    """A stored broadcast as the form's fields."""
    fields = {
        "name": broadcast["name"], "segment_id": broadcast["segment_id"],
        "holdout_percent": str(broadcast["holdout_percent"]), "winner_metric": broadcast["winner_metric"],
        "rate_per_minute": str(broadcast["rate_per_minute"]),
        "scheduled_at": (broadcast.get("scheduled_at") or "")[:16],
    }  # fmt: skip
    for slot, variant in zip(SLOTS, broadcast["variants"], strict=False):
        fields[f"template_{slot}"] = variant["template"]
        fields[f"share_{slot}"] = "" if len(broadcast["variants"]) == 1 else str(variant["share"])
    return fields


async def choices(api: ConsoleApi) -> dict[str, list[str]]:
    segments, templates = await api.get("/v1/segments"), await api.get("/v1/templates")
    return {
        "segments": [s["id"] for s in segments.body] if segments.ok else [],
        "templates": [t["id"] for t in templates.body] if templates.ok else [],
    }


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    async def form_page(request: Request, staff: StaffDep, fields: dict[str, str], errors: dict[str, str],
                        action: str, status: int = 200) -> Response:  # fmt: skip
        context = {"fields": fields, "errors": errors, "action": action, **(await choices(staff.api))}
        return render(request, "broadcasts/form.html", context, staff=staff, status=status)

    @routes.get(BASE)
    async def list_page(request: Request, staff: StaffDep) -> Response:
        answer = await staff.api.get("/v1/broadcasts")
        return render(request, "broadcasts/list.html", {"broadcasts": answer.body if answer.ok else []}, staff=staff)

    @routes.get(f"{BASE}/new")
    async def new_page(request: Request, staff: StaffDep) -> Response:
        fields = {"holdout_percent": "0", "winner_metric": "clicks", "rate_per_minute": "1000"}
        return await form_page(request, staff, fields, {}, f"{BASE}/new")

    @routes.post(f"{BASE}/new")
    async def create(request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call("POST", "/v1/broadcasts", json=body_of(fields))
        if answer.ok:
            return RedirectResponse(f"{BASE}/{answer.body['id']}", status_code=303)
        return await form_page(request, staff, fields, form_errors(answer, fields), f"{BASE}/new", status=422)

    @routes.get(ONE)
    async def detail(request: Request, broadcast_id: str, staff: StaffDep) -> Response:
        answer = await staff.api.get(f"/v1/broadcasts/{broadcast_id}")
        if not answer.ok:
            message = "There is no such broadcast." if answer.status == 404 else answer.message
            return render(request, "error.html", {"heading": "Broadcast", "message": message}, staff=staff,
                          status=answer.status)  # fmt: skip
        audience = await staff.api.get(f"/v1/broadcasts/{broadcast_id}/audience")
        results = None
        if answer.body["status"] not in ("draft",):
            got = await staff.api.get(f"/v1/broadcasts/{broadcast_id}/results")
            results = got.body if got.ok else None
        context = {"b": answer.body, "audience": audience.body if audience.ok else None, "results": results,
                   "notice": request.query_params.get("done", "")}  # fmt: skip
        return render(request, "broadcasts/detail.html", context, staff=staff)

    @routes.get(f"{ONE}/edit")
    async def edit_page(request: Request, broadcast_id: str, staff: StaffDep) -> Response:
        answer = await staff.api.get(f"/v1/broadcasts/{broadcast_id}")
        if not answer.ok:
            return render(request, "error.html", {"heading": "Broadcast", "message": "There is no such broadcast."},
                          staff=staff, status=answer.status)  # fmt: skip
        if answer.body["status"] != "draft":
            return RedirectResponse(f"{BASE}/{broadcast_id}", status_code=303)
        return await form_page(request, staff, fields_of(answer.body), {}, f"{BASE}/{broadcast_id}/edit")

    @routes.post(f"{ONE}/edit")
    async def edit(request: Request, broadcast_id: str, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call("PUT", f"/v1/broadcasts/{broadcast_id}", json=body_of(fields))
        if answer.ok:
            return RedirectResponse(f"{BASE}/{broadcast_id}", status_code=303)
        action = f"{BASE}/{broadcast_id}/edit"
        return await form_page(request, staff, fields, form_errors(answer, fields), action, status=answer.status)

    def control(name: str):  # type: ignore[no-untyped-def]
        async def change(request: Request, broadcast_id: str, staff: StaffDep) -> Response:
            _fields, api = await staff.posted(request)
            answer = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/{name}")
            if answer.ok:
                return RedirectResponse(f"{BASE}/{broadcast_id}?done={name}", status_code=303)
            refusal = {"heading": f"Could not {name} the broadcast", "message": answer.message}
            return render(request, "error.html", refusal, staff=staff, status=answer.status)

        change.__name__ = f"{name}_broadcast"
        return change

    for name in CONTROLS:
        routes.add_api_route(f"{ONE}/{name}", control(name), methods=["POST"])

    return routes
