"""Data, the admins' pages: the collector's sources and write keys (a key shown once, when it
is made), the audit log, and the console's users."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.api.routes.users import UserIn
from ecrm_interaction.api.sessions import ROLES
from ecrm_interaction.console.access import Staff, StaffDep
from ecrm_interaction.console.api import Answer
from ecrm_interaction.console.pages.data import tabs, unavailable
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/data/sources"): "admin",
    ("POST", "/console/data/sources"): "admin",
    ("POST", "/console/data/sources/{name}/revoke"): "admin",
    ("GET", "/console/data/audit"): "admin",
    ("GET", "/console/data/users"): "admin",
    ("POST", "/console/data/users"): "admin",
    ("POST", "/console/data/users/{email}"): "admin",
}
ACTIONS = {
    ("POST", "/console/data/sources"): ("POST", "/v1/sources"),
    ("POST", "/console/data/sources/{name}/revoke"): ("POST", "/v1/sources/{name}/revoke"),
    ("POST", "/console/data/users"): ("POST", "/v1/users"),
    ("POST", "/console/data/users/{email}"): ("PATCH", "/v1/users/{email}"),
}

AUDIT_PAGE = 50
PASSWORD_MIN = int(UserIn.model_json_schema()["properties"]["password"]["minLength"])
PASSWORD_RULE = f"At least {PASSWORD_MIN} characters."
CONFLICTS = {
    "source_exists": (
        "name",
        "a source in force has this name: it exists already (choose another name, or revoke it first)",
    ),
    "user_exists": ("email", "a user with this email exists already"),
    "cannot_demote_yourself": ("role", "you cannot take the admin role from yourself or disable yourself"),
}
"""API refusals that are about one field of the form, and what to say there."""


def errors_of(answer: Answer) -> dict[str, str]:
    """The form's inline messages for a refused change."""
    if answer.error_code in CONFLICTS:
        name, message = CONFLICTS[answer.error_code]
        return {name: message}
    return answer.field_errors() or {"$": answer.message or f"the API answered {answer.status}"}


async def _sources_page(
    request: Request, staff: Staff, *, form: dict[str, str], errors: dict[str, str],
    created: dict[str, Any] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    answer = await staff.api.get("/v1/sources")
    context = {
        "tabs": tabs(staff),
        "sources": answer.body if answer.ok else None,
        "problem": None if answer.ok else unavailable(answer, "Sources"),
        "form": form,
        "errors": errors,
        "created": created,
    }
    return render(request, "data/sources.html", context, staff=staff, status=status)


async def _users_page(
    request: Request, staff: Staff, *, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    answer = await staff.api.get("/v1/users")
    context = {
        "tabs": tabs(staff),
        "users": answer.body if answer.ok else [],
        "roles": list(ROLES),
        "form": form,
        "errors": errors,
        "password_rule": PASSWORD_RULE,
        "password_min": PASSWORD_MIN,
        "me": staff.name,
    }
    return render(request, "data/users.html", context, staff=staff, status=status)


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/data/sources")
    async def sources(request: Request, staff: StaffDep) -> Response:
        return await _sources_page(request, staff, form={"kind": "server"}, errors={})

    @routes.post("/console/data/sources")
    async def create_source(request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        origins = [o.strip() for o in fields.get("allowed_origins", "").replace(",", "\n").splitlines() if o.strip()]
        body = {"name": fields.get("name", "").strip(), "kind": fields.get("kind", ""), "allowed_origins": origins}
        answer = await api.call("POST", "/v1/sources", json=body)
        if answer.ok:
            # Not a redirect: the key is in this answer only, so it is shown on this page, once.
            return await _sources_page(request, staff, form={"kind": "server"}, errors={}, created=answer.body)
        errors = {key.split(".")[0]: message for key, message in errors_of(answer).items()}
        return await _sources_page(request, staff, form=fields, errors=errors, status=answer.status)

    @routes.post("/console/data/sources/{name}/revoke")
    async def revoke_source(name: str, request: Request, staff: StaffDep) -> Response:
        _fields, api = await staff.posted(request)
        answer = await api.call("POST", f"/v1/sources/{name}/revoke")
        if answer.ok:
            return RedirectResponse("/console/data/sources", status_code=303)
        return await _sources_page(request, staff, form={"kind": "server"}, errors=errors_of(answer),
                                   status=answer.status)  # fmt: skip

    @routes.get("/console/data/audit")
    async def audit(request: Request, staff: StaffDep, actor: str = "", entity: str = "", page: int = 1) -> Response:
        page = max(page, 1)
        params = {"actor": actor.strip(), "entity": entity.strip(), "limit": AUDIT_PAGE + 1,
                  "offset": (page - 1) * AUDIT_PAGE}  # fmt: skip
        answer = await staff.api.get("/v1/audit", **params)
        entries = answer.body if answer.ok else []
        context: dict[str, Any] = {
            "tabs": tabs(staff),
            "entries": entries[:AUDIT_PAGE],
            "more": len(entries) > AUDIT_PAGE,
            "page": page,
            "actor": actor,
            "entity": entity,
            "problem": None if answer.ok else unavailable(answer, "Audit log"),
        }
        return render(request, "data/audit.html", context, staff=staff)

    @routes.get("/console/data/users")
    async def users(request: Request, staff: StaffDep) -> Response:
        return await _users_page(request, staff, form={"role": "viewer"}, errors={})

    @routes.post("/console/data/users")
    async def add_user(request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        body = {"email": fields.get("email", "").strip(), "name": fields.get("name", "").strip(),
                "role": fields.get("role", ""), "password": fields.get("password", "")}  # fmt: skip
        answer = await api.call("POST", "/v1/users", json=body)
        if answer.ok:
            return RedirectResponse("/console/data/users", status_code=303)
        shown = fields | {"password": ""}  # a refused password is never sent back to the browser
        return await _users_page(request, staff, form=shown, errors=errors_of(answer), status=answer.status)

    @routes.post("/console/data/users/{email}")
    async def change_user(email: str, request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        change: dict[str, Any] = {}
        if fields.get("role"):
            change["role"] = fields["role"]
        if fields.get("disabled") in ("true", "false"):
            change["disabled"] = fields["disabled"] == "true"
        answer = await api.call("PATCH", f"/v1/users/{email}", json=change)
        if answer.ok:
            return RedirectResponse("/console/data/users", status_code=303)
        return await _users_page(request, staff, form={"role": "viewer"}, errors=errors_of(answer),
                                 status=answer.status)  # fmt: skip

    return routes
