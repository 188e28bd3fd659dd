"""Loyalty: the program (points per purchase and per event, the tiers, the points and rewards
rules give), its editor for marketers, how many customers are in each tier, the rewards issued."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import Staff, StaffDep
from ecrm_interaction.console.api import Answer
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/loyalty"): "viewer",
    ("POST", "/console/loyalty/program"): "marketer",
}
ACTIONS = {("POST", "/console/loyalty/program"): ("PUT", "/v1/loyalty/program")}

BLANK_ROWS = 2
"""Empty rows the editor offers for a new event or tier."""


def _rows(fields: dict[str, str], group: str, columns: tuple[str, str]) -> list[dict[str, str]]:
    """The rows a form sent for ``group`` (``tiers.0.name``, ``tiers.0.min_points``, …), in order."""
    count = 1 + max((int(k.split(".")[1]) for k in fields if k.startswith(f"{group}.") and k.split(".")[1].isdigit()),
                    default=-1)  # fmt: skip
    return [{c: fields.get(f"{group}.{i}.{c}", "").strip() for c in columns} for i in range(count)]


def program_of_form(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The program the editor's fields describe (values as typed: the API validates them), the
    form field of each place of it an API error can name, and what the form itself refuses
    (an event named twice). Rows left empty are left out."""
    places: dict[str, str] = {}
    refused: dict[str, str] = {}
    events: dict[str, str] = {}
    for i, row in enumerate(_rows(fields, "events", ("event", "points"))):
        if not row["event"] and not row["points"]:
            continue
        if row["event"] in events:
            refused[f"events.{i}.event"] = f"{row['event']!r} is named twice"
        events[row["event"]] = row["points"]
        places[f"events.{row['event']}"] = f"events.{i}.points"
        places[f"events.{row['event']}.[key]"] = f"events.{i}.event"
    tiers: list[dict[str, str]] = []
    for i, row in enumerate(_rows(fields, "tiers", ("name", "min_points"))):
        if not row["name"] and not row["min_points"]:
            continue
        for column in ("name", "min_points"):
            places[f"tiers.{len(tiers)}.{column}"] = f"tiers.{i}.{column}"
        tiers.append(row)
    program = {"points_per_unit": fields.get("points_per_unit", "").strip(), "events": events, "tiers": tiers}
    return program, places, refused


def _form_errors(answer: Answer, places: dict[str, str]) -> dict[str, str]:
    """The API's refusal, each message at the form field it names (else at its group, else the form's)."""
    errors: dict[str, str] = {}
    for path, why in (answer.field_errors() or {"$": answer.message}).items():
        name = places.get(path) or (path if path in ("points_per_unit", "events", "tiers") else None)
        if name is None and path.split(".")[0] in ("events", "tiers"):
            name = path.split(".")[0]
        errors.setdefault(name or "$", why)
    return errors


def _editor(program: dict[str, Any]) -> dict[str, Any]:
    """The editor's rows for the program as it is saved."""
    return {
        "points_per_unit": program.get("points_per_unit", ""),
        "events": [{"event": name, "points": points} for name, points in (program.get("events") or {}).items()],
        "tiers": [dict(t) for t in program.get("tiers") or []],
    }


def _typed(fields: dict[str, str]) -> dict[str, Any]:
    """The editor's rows as they were typed (each at its place, so the errors name the right one)."""
    return {
        "points_per_unit": fields.get("points_per_unit", ""),
        "events": _rows(fields, "events", ("event", "points")),
        "tiers": _rows(fields, "tiers", ("name", "min_points")),
    }


async def _page(
    request: Request, staff: Staff, typed: dict[str, Any] | None, errors: dict[str, str], status: int = 200,
    saved: bool = False,
) -> Response:  # fmt: skip
    program, tiers, rewards, rules = await asyncio.gather(
        staff.api.get("/v1/loyalty/program"), staff.api.get("/v1/loyalty/tiers"),
        staff.api.get("/v1/loyalty/rewards", limit=20), staff.api.get("/v1/rules"),
    )  # fmt: skip
    current = program.body if program.ok else {}
    given = [
        {"rule_id": rule["id"], "rule": rule["name"], "enabled": rule.get("enabled", True), **action}
        for rule in (rules.body if rules.ok else [])
        for action in rule.get("actions", [])
        if action.get("kind") in ("points", "reward")
    ]
    editor = typed if typed is not None else _editor(current)
    editor["events"] = editor["events"] + [{"event": "", "points": ""}] * BLANK_ROWS
    editor["tiers"] = editor["tiers"] + [{"name": "", "min_points": ""}] * BLANK_ROWS
    members = tiers.body if tiers.ok else []
    context = {
        "program": current,
        "members": members,
        "members_total": sum(t["members"] for t in members),
        "rewards": rewards.body if rewards.ok else {"rewards": [], "recent": []},
        "given": given,
        "editor": editor,
        "errors": errors,
        "saved": saved,
    }
    return render(request, "loyalty/loyalty.html", context, staff=staff, status=status)


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/loyalty")
    async def loyalty(request: Request, staff: StaffDep, saved: bool = False) -> Response:
        return await _page(request, staff, None, {}, saved=saved)

    @routes.post("/console/loyalty/program")
    async def save_program(request: Request, staff: StaffDep) -> Response:
        """The editor → one ``PUT /v1/loyalty/program`` (the whole program, validated there)."""
        fields, api = await staff.posted(request)
        program, places, refused = program_of_form(fields)
        if refused:
            return await _page(request, staff, _typed(fields), refused, status=422)
        answer = await api.call("PUT", "/v1/loyalty/program", json=program)
        if answer.ok:
            return RedirectResponse("/console/loyalty?saved=1#program", status_code=303)
        return await _page(request, staff, _typed(fields), _form_errors(answer, places), status=answer.status)

    return routes
