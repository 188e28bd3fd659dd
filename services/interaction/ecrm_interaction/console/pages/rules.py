"""Rules: the list with each rule's figures, the editor (the spec as YAML, checked by the API),
a dry run for a customer, enable/disable, and the history of changes with before and after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.api import Answer
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/rules"): "viewer",
    ("GET", "/console/rules/new"): "marketer",
    ("POST", "/console/rules/new"): "marketer",
    ("GET", "/console/rules/{rule_id}"): "viewer",
    ("GET", "/console/rules/{rule_id}/edit"): "marketer",
    ("POST", "/console/rules/{rule_id}/edit"): "marketer",
    ("POST", "/console/rules/{rule_id}/enable"): "marketer",
    ("POST", "/console/rules/{rule_id}/disable"): "marketer",
    ("POST", "/console/rules/{rule_id}/dry-run"): "viewer",
}
ACTIONS = {
    ("POST", "/console/rules/new"): ("POST", "/v1/rules"),
    ("POST", "/console/rules/{rule_id}/edit"): ("PUT", "/v1/rules/{rule_id}"),
    ("POST", "/console/rules/{rule_id}/enable"): ("POST", "/v1/rules/{rule_id}/enable"),
    ("POST", "/console/rules/{rule_id}/disable"): ("POST", "/v1/rules/{rule_id}/disable"),
    ("POST", "/console/rules/{rule_id}/dry-run"): ("POST", "/v1/rules/{rule_id}/dry-run"),
}

PERIODS = (("7", "7 days"), ("30", "30 days"), ("90", "90 days"))
OWN_FIELDS = ("id", "name", "enabled")
"""The rule's fields the editor shows as fields of their own; the rest is the YAML spec."""
EXAMPLE_SPEC = """\
category: marketing
trigger: {kind: event, event: Product Added}
conditions: {kind: consent, channel: email}
cooldown: 3d
actions:
  - {kind: email, template: cart-reminder}
"""


def spec_yaml(rule: dict[str, Any]) -> str:
    """The rule without its own fields, as YAML (the editor's textarea)."""
    rest = {k: v for k, v in rule.items() if k not in OWN_FIELDS and v is not None}
    return yaml.safe_dump(rest, sort_keys=False, allow_unicode=True, width=100)


def parse_form(fields: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The rule the form describes (its YAML spec with the id, name and enabled fields), or the
    inline error of a spec that is not YAML or not a mapping."""
    try:
        spec = yaml.safe_load(fields.get("spec", "")) or {}
    except yaml.YAMLError as exc:
        return None, {"spec": f"not YAML: {exc}"[:500]}
    if not isinstance(spec, dict):
        return None, {"spec": "the spec must be a mapping of a rule's fields (trigger, actions, ...)"}
    rule = {k: v for k, v in spec.items() if k not in OWN_FIELDS}
    rule |= {"id": fields.get("id", "").strip(), "name": fields.get("name", "").strip()}
    rule["enabled"] = fields.get("enabled") == "on"
    return rule, {}


def field_errors(answer: Answer) -> dict[str, str]:
    """The API's refusal, by the form's fields: id, name and enabled are fields of their own;
    every other path (``trigger.event``, ``actions.0.template``) is in the spec, named there."""
    errors: dict[str, str] = {}
    named = answer.field_errors() or {"$": answer.message}
    for path, message in named.items():
        head = path.split(".", 1)[0]
        if head in OWN_FIELDS:
            errors.setdefault(head, message)
        else:
            where = "" if path in ("$", "") else f"{path}: "
            errors["spec"] = (errors.get("spec", "") + "; " if "spec" in errors else "") + where + message
    if answer.status == 409:
        errors = {"id": "a rule with this id exists already"}
    return errors


def _conditions(node: dict[str, Any] | None, depth: int = 0) -> list[dict[str, Any]]:
    """A dry run's condition tree as rows (the condition in words, met or not, how deep)."""
    if not node:
        return []
    rows = [{"condition": node.get("condition"), "met": node.get("met"), "depth": depth}]
    for part in node.get("parts", []):
        rows += _conditions(part, depth + 1)
    return rows


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/rules")
    async def rule_list(request: Request, staff: StaffDep, days: str = "30") -> Response:
        days = days if days in dict(PERIODS) else "30"
        answer = await staff.api.get("/v1/rules/figures", days=days)
        figures = answer.body if answer.ok else {"rules": [], "engagement": "error"}
        context = {
            "figures": figures,
            "days": days,
            "periods": PERIODS,
            "problem": None if answer.ok else answer.message,
        }
        return render(request, "rules/list.html", context, staff=staff)

    @routes.get("/console/rules/new")
    async def new_rule(request: Request, staff: StaffDep) -> Response:
        form = {"id": "", "name": "", "enabled": "on", "spec": EXAMPLE_SPEC}
        return render(request, "rules/edit.html", {"form": form, "errors": {}, "new": True}, staff=staff)

    @routes.post("/console/rules/new")
    async def create_rule(request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        rule, errors = parse_form(fields)
        if rule is not None:
            answer = await api.call("POST", "/v1/rules", json=rule)
            if answer.ok:
                return RedirectResponse(f"/console/rules/{quote(rule['id'])}?saved=1", status_code=303)
            errors = field_errors(answer)
        context = {"form": fields, "errors": errors, "new": True}
        return render(request, "rules/edit.html", context, staff=staff, status=422)

    @routes.get("/console/rules/{rule_id}")
    async def rule_page(request: Request, rule_id: str, staff: StaffDep) -> Response:
        return await _rule_page(request, staff, rule_id)

    @routes.get("/console/rules/{rule_id}/edit")
    async def edit_rule(request: Request, rule_id: str, staff: StaffDep) -> Response:
        answer = await staff.api.get(f"/v1/rules/{quote(rule_id)}")
        if not answer.ok:
            return _missing(request, staff, answer)
        rule = answer.body
        form = {
            "id": rule["id"],
            "name": rule["name"],
            "enabled": "on" if rule["enabled"] else "",
            "spec": spec_yaml(rule),
        }
        return render(request, "rules/edit.html", {"form": form, "errors": {}, "new": False}, staff=staff)

    @routes.post("/console/rules/{rule_id}/edit")
    async def save_rule(request: Request, rule_id: str, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        fields["id"] = rule_id  # the id is the page's; a new id is a new rule
        rule, errors = parse_form(fields)
        if rule is not None:
            answer = await api.call("PUT", f"/v1/rules/{quote(rule_id)}", json=rule)
            if answer.ok:
                return RedirectResponse(f"/console/rules/{quote(rule_id)}?saved=1", status_code=303)
            errors = field_errors(answer)
        context = {"form": fields, "errors": errors, "new": False}
        return render(request, "rules/edit.html", context, staff=staff, status=422)

    async def switch(request: Request, rule_id: str, staff: StaffDep, verb: str) -> Response:
        _fields, api = await staff.posted(request)
        answer = await api.call("POST", f"/v1/rules/{quote(rule_id)}/{verb}")
        if not answer.ok:
            return _missing(request, staff, answer)
        return RedirectResponse(f"/console/rules/{quote(rule_id)}?{verb}d=1", status_code=303)

    @routes.post("/console/rules/{rule_id}/enable")
    async def enable_rule(request: Request, rule_id: str, staff: StaffDep) -> Response:
        return await switch(request, rule_id, staff, "enable")

    @routes.post("/console/rules/{rule_id}/disable")
    async def disable_rule(request: Request, rule_id: str, staff: StaffDep) -> Response:
        return await switch(request, rule_id, staff, "disable")

    @routes.post("/console/rules/{rule_id}/dry-run")
    async def dry_run(request: Request, rule_id: str, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        body: dict[str, Any] = {"customer_id": fields.get("customer_id", "").strip()}
        errors: dict[str, str] = {}
        if event_name := fields.get("event", "").strip():
            try:
                properties = orjson.loads(fields.get("properties") or "{}")
            except orjson.JSONDecodeError as exc:
                properties, errors["properties"] = {}, f"not JSON: {exc}"
            body["event"] = {"message_id": "console-dry-run", "type": "track", "event": event_name,
                             "timestamp": datetime.now(UTC).isoformat(), "properties": properties}  # fmt: skip
        result = None
        if not errors:
            answer = await api.call("POST", f"/v1/rules/{quote(rule_id)}/dry-run", json=body)
            if answer.ok:
                result = answer.body
            else:
                for path, message in (answer.field_errors() or {"$": answer.message}).items():
                    head = path.split(".", 1)[0]
                    field = {"customer_id": "customer_id", "event": "properties" if "properties" in path else "event"}
                    errors[field.get(head, "$")] = message
        context = {"dry": result, "dry_form": fields, "dry_errors": errors,
                   "conditions": _conditions(result.get("conditions")) if result else []}  # fmt: skip
        status = 200 if result is not None else 422
        if request.headers.get("hx-request"):  # errors are the fragment's content: htmx swaps only a 2xx in
            return render(request, "rules/_dry_run.html", context | {"rule_id": rule_id}, staff=staff)
        return await _rule_page(request, staff, rule_id, extra=context, status=status)

    return routes


async def _rule_page(
    request: Request, staff: Any, rule_id: str, extra: dict[str, Any] | None = None, status: int = 200
) -> Response:
    answer = await staff.api.get(f"/v1/rules/{quote(rule_id)}")
    if not answer.ok:
        return _missing(request, staff, answer)
    rule = answer.body
    history = await staff.api.get(f"/v1/rules/{quote(rule_id)}/history")
    figures = await staff.api.get("/v1/rules/figures", days=30)
    mine = (
        next((r for r in (figures.body or {}).get("rules", []) if r["rule_id"] == rule_id), None)
        if figures.ok
        else None
    )
    context = {
        "rule": rule,
        "rule_id": rule_id,
        "spec": spec_yaml(rule),
        "history": history.body if history.ok else [],
        "figures": mine,
        "engagement": (figures.body or {}).get("engagement") if figures.ok else None,
        "dry": None,
        "dry_form": {},
        "dry_errors": {},
        "conditions": [],
        "saved": request.query_params.get("saved"),
        **(extra or {}),
    }
    return render(request, "rules/rule.html", context, staff=staff, status=status)


def _missing(request: Request, staff: Any, answer: Answer) -> Response:
    heading = "No such rule" if answer.status == 404 else "The rule could not be read"
    return render(request, "error.html", {"heading": heading, "message": answer.message}, staff=staff,
                  status=answer.status if answer.status >= 400 else 502)  # fmt: skip
