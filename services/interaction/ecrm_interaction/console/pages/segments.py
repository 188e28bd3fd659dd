"""Segments: the list with member counts, a segment's page (its definition, entries and exits
per day, its members with a CSV export) and the editor, which checks the definition as one types
and shows whom it would hold before saving (``POST /v1/segments/preview``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.api import Answer, ConsoleApi
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/segments"): "viewer",
    ("GET", "/console/segments/new"): "marketer",
    ("POST", "/console/segments"): "marketer",
    ("POST", "/console/segments/preview"): "marketer",
    ("GET", "/console/segments/{segment_id}"): "viewer",
    ("GET", "/console/segments/{segment_id}/edit"): "marketer",
    ("POST", "/console/segments/{segment_id}"): "marketer",
    ("POST", "/console/segments/{segment_id}/delete"): "marketer",
    ("GET", "/console/segments/{segment_id}/members"): "viewer",
}
ACTIONS = {
    ("POST", "/console/segments"): ("PUT", "/v1/segments/{segment_id}"),
    ("POST", "/console/segments/preview"): ("POST", "/v1/segments/preview"),
    ("POST", "/console/segments/{segment_id}"): ("PUT", "/v1/segments/{segment_id}"),
    ("POST", "/console/segments/{segment_id}/delete"): ("DELETE", "/v1/segments/{segment_id}"),
}
MEMBERS_PER_PAGE = 100
CHART_DAYS = 30
STARTER = {"kind": "all", "conditions": [{"kind": "trait", "trait": "orders", "op": "gte", "value": 1}]}
"""The condition a new segment's editor starts with."""
LABELS = {"id": "Id", "name": "Name", "description": "Description", "condition": "Condition"}


def _form_definition(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The definition the editor's fields make, and the fields that are not even JSON."""
    definition: dict[str, Any] = {
        "id": fields.get("id", "").strip(),
        "name": fields.get("name", "").strip(),
        "description": fields.get("description", ""),
    }
    try:
        definition["condition"] = json.loads(fields.get("condition", ""))
    except json.JSONDecodeError as exc:
        return definition, {"condition": f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"}
    return definition, {}


def _errors(answer: Answer) -> dict[str, str]:
    """The API's refusal as the editor's fields: ``condition…`` paths kept whole (they name the
    part of the tree), the path's ``segment_id`` as the ``id`` field."""
    named = answer.field_errors()
    if not named and not answer.ok:
        named = {"$": answer.message or f"the API answered {answer.status}"}
    return {("id" if key == "segment_id" else key): message for key, message in named.items()}


def _label(field: str) -> str:
    head = field.split(".", 1)[0]
    return LABELS.get(head, field)


def _inline(errors: dict[str, str]) -> dict[str, str]:
    """The errors under the editor's fields: every error of the condition's tree under
    ``condition``, each naming its place in the tree."""
    inline = {key: message for key, message in errors.items() if not key.startswith("condition")}
    tree = [message if key == "condition" else f"{key}: {message}" for key, message in errors.items()
            if key.startswith("condition")]  # fmt: skip
    if tree:
        inline["condition"] = "; ".join(tree)
    return inline


def _editor(
    request: Request, staff: StaffDep, fields: dict[str, str], errors: dict[str, str], *, editing: str | None,
    preview: dict[str, Any] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    context = {"fields": fields, "errors": errors, "inline": _inline(errors), "editing": editing, "preview": preview,
               "label": _label}  # fmt: skip
    return render(request, "segments/edit.html", context, staff=staff, status=status)


async def _preview(api: ConsoleApi, fields: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    definition, errors = _form_definition(fields)
    if errors:
        return None, errors
    answer = await api.call("POST", "/v1/segments/preview", json=definition)
    return (answer.body, {}) if answer.ok else (None, _errors(answer))


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/segments")
    async def segment_list(request: Request, staff: StaffDep) -> Response:
        segments = await staff.api.get("/v1/segments")
        sizes = await staff.api.get("/v1/segment-sizes")
        counts = {s["segment_id"]: s["members"] for s in sizes.body} if sizes.ok else None
        context = {"segments": segments.body if segments.ok else [], "counts": counts}
        return render(request, "segments/list.html", context, staff=staff)

    @routes.get("/console/segments/new")
    async def new_segment(request: Request, staff: StaffDep) -> Response:
        fields = {"id": "", "name": "", "description": "", "condition": json.dumps(STARTER, indent=2)}
        return _editor(request, staff, fields, {}, editing=None)

    @routes.post("/console/segments/preview")
    async def preview_segment(request: Request, staff: StaffDep) -> Response:
        """The editor's live check: a fragment for htmx (always 200, so htmx swaps it in),
        else the whole editor with the preview (422 when the definition is refused)."""
        fields, api = await staff.posted(request)
        preview, errors = await _preview(api, fields)
        editing = fields.get("editing") or None
        if request.headers.get("hx-request"):
            context = {"preview": preview, "errors": errors, "label": _label}
            return render(request, "segments/_preview.html", context, staff=staff)
        return _editor(request, staff, fields, errors, editing=editing, preview=preview, status=422 if errors else 200)

    async def save(request: Request, staff: StaffDep, editing: str | None) -> Response:
        fields, api = await staff.posted(request)
        if editing is not None:
            fields["id"] = editing
        definition, errors = _form_definition(fields)
        segment_id = definition["id"]
        if not errors and editing is None and segment_id:
            existing = await api.get(f"/v1/segments/{quote(segment_id, safe='')}")
            if existing.ok:
                errors = {"id": "a segment with this id exists already: choose another id, or edit that segment"}
        if not errors:
            answer = await api.call("PUT", f"/v1/segments/{quote(segment_id, safe='') or '-'}", json=definition)
            if answer.ok:
                return RedirectResponse(f"/console/segments/{segment_id}", status_code=303)
            errors = _errors(answer)
            status = answer.status if answer.status in (403, 503) else 422
        else:
            status = 422
        return _editor(request, staff, fields, errors, editing=editing, status=status)

    @routes.post("/console/segments")
    async def create_segment(request: Request, staff: StaffDep) -> Response:
        return await save(request, staff, None)

    @routes.get("/console/segments/{segment_id}")
    async def segment_page(request: Request, staff: StaffDep, segment_id: str) -> Response:
        segment = await staff.api.get(f"/v1/segments/{quote(segment_id, safe='')}")
        if not segment.ok:
            return _missing(request, staff, segment_id)
        size = await staff.api.get(f"/v1/segments/{quote(segment_id, safe='')}/members", limit=1)
        changes = await staff.api.get(f"/v1/segments/{quote(segment_id, safe='')}/changes", days=CHART_DAYS)
        chart_data = None
        if changes.ok:
            days = changes.body["days"]
            epoch = [int(datetime.fromisoformat(d["day"]).replace(tzinfo=UTC).timestamp()) for d in days]
            chart_data = {
                "x": epoch,
                "series": [
                    {"label": "Entered", "values": [d["entered"] for d in days]},
                    {"label": "Exited", "values": [d["exited"] for d in days]},
                ],
                "entered": sum(d["entered"] for d in days),
                "exited": sum(d["exited"] for d in days),
            }
        context = {
            "segment": segment.body,
            "condition": json.dumps(segment.body["condition"], indent=2),
            "members": size.body["total"] if size.ok else None,
            "changes": chart_data,
            "days": CHART_DAYS,
            "message": request.query_params.get("message", ""),
        }
        return render(request, "segments/show.html", context, staff=staff)

    @routes.get("/console/segments/{segment_id}/edit")
    async def edit_segment(request: Request, staff: StaffDep, segment_id: str) -> Response:
        segment = await staff.api.get(f"/v1/segments/{quote(segment_id, safe='')}")
        if not segment.ok:
            return _missing(request, staff, segment_id)
        body = segment.body
        fields = {"id": body["id"], "name": body["name"], "description": body.get("description", ""),
                  "condition": json.dumps(body["condition"], indent=2)}  # fmt: skip
        return _editor(request, staff, fields, {}, editing=segment_id)

    @routes.post("/console/segments/{segment_id}")
    async def update_segment(request: Request, staff: StaffDep, segment_id: str) -> Response:
        return await save(request, staff, segment_id)

    @routes.post("/console/segments/{segment_id}/delete")
    async def delete_segment(request: Request, staff: StaffDep, segment_id: str) -> Response:
        _fields, api = await staff.posted(request)
        answer = await api.call("DELETE", f"/v1/segments/{quote(segment_id, safe='')}")
        if answer.ok:
            return RedirectResponse("/console/segments", status_code=303)
        message = f"The segment was not deleted: {answer.message or answer.status}."
        return render(request, "error.html", {"heading": "Not deleted", "message": message}, staff=staff,
                      status=answer.status)  # fmt: skip

    @routes.get("/console/segments/{segment_id}/members")
    async def segment_members(request: Request, staff: StaffDep, segment_id: str, page: int = 1) -> Response:
        segment = await staff.api.get(f"/v1/segments/{quote(segment_id, safe='')}")
        if not segment.ok:
            return _missing(request, staff, segment_id)
        page = max(1, min(page, 100_000))
        offset = (page - 1) * MEMBERS_PER_PAGE
        members = await staff.api.get(
            f"/v1/segments/{quote(segment_id, safe='')}/members", limit=MEMBERS_PER_PAGE, offset=offset
        )
        context = {
            "segment": segment.body,
            "page": page,
            "members": members.body if members.ok else None,
            "per_page": MEMBERS_PER_PAGE,
        }
        return render(request, "segments/members.html", context, staff=staff)

    return routes


def _missing(request: Request, staff: StaffDep, segment_id: str) -> Response:
    message = f"There is no segment {segment_id!r}."
    return render(request, "error.html", {"heading": "No such segment", "message": message}, staff=staff, status=404)
