"""Templates: the list, the editor (subject, text, HTML) with a live preview for a chosen
customer, a test send, and the saved versions (restore one by saving it again).

The HTML preview: the console's own CSP allows no inline style, and a ``srcdoc`` frame would
inherit it, so an email's ``<style>`` would be refused (and reported in the browser's console).
Instead the editor form is posted into a sandboxed ``<iframe>`` (``formtarget``): the answer,
``POST /console/templates/preview.html``, is the rendered HTML alone, served with a CSP of its
own that allows inline style and ``data:`` images and nothing else (no script, no network, no
form) and the ``sandbox`` directive, so the email can neither run nor reach the console. The
editor's page allows framing itself (``frame-src 'self'``) and nothing more. Without JavaScript
the "Preview HTML" button does it; with it, ``console.js`` presses that button when typing
stops, while htmx swaps in the subject and text.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.api import Answer, ConsoleApi
from ecrm_interaction.console.rendering import CONTENT_SECURITY_POLICY, render

PAGES = {
    ("GET", "/console/templates"): "viewer",
    ("GET", "/console/templates/new"): "marketer",
    ("POST", "/console/templates/new"): "marketer",
    ("POST", "/console/templates/preview"): "viewer",
    ("POST", "/console/templates/preview.html"): "viewer",
    ("GET", "/console/templates/{template_id}"): "viewer",
    ("POST", "/console/templates/{template_id}"): "marketer",
    ("POST", "/console/templates/{template_id}/test-send"): "marketer",
    ("GET", "/console/templates/{template_id}/versions/{version}"): "viewer",
    ("POST", "/console/templates/{template_id}/versions/{version}/restore"): "marketer",
}
ACTIONS = {
    ("POST", "/console/templates/new"): ("PUT", "/v1/templates/{template_id}"),
    ("POST", "/console/templates/preview"): ("POST", "/v1/templates/preview"),
    ("POST", "/console/templates/preview.html"): ("POST", "/v1/templates/preview"),
    ("POST", "/console/templates/{template_id}"): ("PUT", "/v1/templates/{template_id}"),
    ("POST", "/console/templates/{template_id}/test-send"): ("POST", "/v1/templates/{template_id}/test-send"),
    ("POST", "/console/templates/{template_id}/versions/{version}/restore"): ("PUT", "/v1/templates/{template_id}"),
}

EDITOR_CSP = CONTENT_SECURITY_POLICY + "; frame-src 'self'"
"""The editor's page: the console's policy, and its own origin's preview in a frame."""
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
"""The HTML preview: an email's inline styles and embedded images, nothing else."""
PREVIEW_HEADERS = {
    "Content-Security-Policy": PREVIEW_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PARTS = ("subject", "text", "html")
NAMES = {"subject": "Subject", "text": "Text", "html": "HTML", "preview_customer": "Preview for customer",
         "id": "Id", "to": "Send to", "test_customer": "Render for customer", "$": "Template"}  # fmt: skip


def _body(fields: dict[str, str], template_id: str) -> dict[str, Any]:
    return {"id": template_id, "subject": fields.get("subject", ""), "text": fields.get("text", ""),
            "html": fields.get("html") or None}  # fmt: skip


def _errors(answer: Answer, rename: dict[str, str] | None = None) -> dict[str, str]:
    """The API's refusal by the form's field names (``customer_id`` is the preview's customer)."""
    named = answer.field_errors() or {"$": answer.message}
    return {(rename or {}).get(path, path): message for path, message in named.items()}


def _editor(request: Request, staff: Any, context: dict[str, Any], status: int = 200) -> Response:
    page = render(request, "templates/edit.html", {"names": NAMES, **context}, staff=staff, status=status)
    page.headers["Content-Security-Policy"] = EDITOR_CSP
    return page


async def _preview(api: ConsoleApi, fields: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    customer = fields.get("preview_customer", "").strip()
    if not customer:
        return None, {}
    body = {"customer_id": customer, **{k: v for k, v in _body(fields, "preview").items() if k != "id"}}
    answer = await api.call("POST", "/v1/templates/preview", json=body)
    if answer.ok:
        return answer.body, {}
    return None, _errors(answer, {"customer_id": "preview_customer"})


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/templates")
    async def template_list(request: Request, staff: StaffDep) -> Response:
        answer = await staff.api.get("/v1/templates")
        listed = answer.body if answer.ok else []
        return render(request, "templates/list.html", {"templates": listed}, staff=staff)

    @routes.get("/console/templates/new")
    async def new_template(request: Request, staff: StaffDep) -> Response:
        form = {"id": "", "subject": "", "text": "", "html": "", "preview_customer": ""}
        return _editor(request, staff, {"form": form, "errors": {}, "new": True, "versions": []})

    @routes.post("/console/templates/new")
    async def create_template(request: Request, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        template_id = fields.get("id", "").strip()
        errors: dict[str, str] = {}
        if template_id and (await staff.api.get(f"/v1/templates/{quote(template_id)}")).ok:
            errors = {"id": "a template with this id exists already: open it to change it"}
        elif not template_id:
            errors = {"id": "give the template an id"}
        else:
            answer = await api.call("PUT", f"/v1/templates/{quote(template_id)}", json=_body(fields, template_id))
            if answer.ok:
                return RedirectResponse(f"/console/templates/{quote(template_id)}?saved=1", status_code=303)
            errors = _errors(answer)
        context = {"form": fields, "errors": errors, "new": True, "versions": []}
        return _editor(request, staff, context, status=422)

    @routes.post("/console/templates/preview")
    async def preview_parts(request: Request, staff: StaffDep) -> Response:
        """The subject and text for the customer (htmx swaps them in), or the inline errors."""
        fields, api = await staff.posted(request)
        rendered, errors = await _preview(api, fields)
        status = 422 if errors else 200
        context: dict[str, Any] = {"rendered": rendered, "errors": errors, "names": NAMES, "form": fields}
        if request.headers.get("hx-request"):  # errors are the preview's content: htmx swaps only a 2xx in
            return render(request, "templates/_preview.html", context, staff=staff)
        template_id = fields.get("template_id", "")
        context |= {"new": not template_id, "versions": []}
        if template_id:
            fields["id"] = template_id
        return _editor(request, staff, context, status=status)

    @routes.post("/console/templates/preview.html")
    async def preview_html(request: Request, staff: StaffDep) -> Response:
        """The rendered HTML alone, for the sandboxed preview frame, under its own CSP (or why
        there is none, in the frame)."""
        fields, api = await staff.posted(request)
        rendered, errors = await _preview(api, fields)
        if rendered is None:
            why = "; ".join(f"{NAMES.get(k, k)}: {v}" for k, v in errors.items()) or "Choose a customer to preview."
            html = f"<!doctype html><title>Preview</title><p>{escape(why)}</p>"
        else:
            html = rendered.get("html") or "<!doctype html><title>Preview</title><p>This template has no HTML part.</p>"
        return HTMLResponse(html, headers=PREVIEW_HEADERS)  # a frame's content, errors too

    @routes.get("/console/templates/{template_id}")
    async def template_page(request: Request, template_id: str, staff: StaffDep) -> Response:
        answer = await staff.api.get(f"/v1/templates/{quote(template_id)}")
        if not answer.ok:
            return _missing(request, staff, answer)
        form = {**answer.body, "html": answer.body.get("html") or "", "preview_customer": ""}
        return await _template_page(request, staff, template_id, form, {})

    @routes.post("/console/templates/{template_id}")
    async def save_template(request: Request, template_id: str, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        answer = await api.call("PUT", f"/v1/templates/{quote(template_id)}", json=_body(fields, template_id))
        if answer.ok:
            return RedirectResponse(f"/console/templates/{quote(template_id)}?saved=1", status_code=303)
        fields["id"] = template_id
        return await _template_page(request, staff, template_id, fields, _errors(answer), status=422)

    @routes.post("/console/templates/{template_id}/test-send")
    async def test_send(request: Request, template_id: str, staff: StaffDep) -> Response:
        fields, api = await staff.posted(request)
        body = {"to": fields.get("to", "").strip(), "customer_id": fields.get("test_customer", "").strip()}
        answer = await api.call("POST", f"/v1/templates/{quote(template_id)}/test-send", json=body)
        if answer.ok:
            return RedirectResponse(
                f"/console/templates/{quote(template_id)}?sent={quote(body['to'])}", status_code=303
            )
        saved = await staff.api.get(f"/v1/templates/{quote(template_id)}")
        if not saved.ok:
            return _missing(request, staff, saved)
        form = {**saved.body, "html": saved.body.get("html") or "", "preview_customer": ""}
        test_errors = _errors(answer, {"customer_id": "test_customer"})
        if answer.status == 502:
            test_errors = {"$": "the mail server did not take the test message; try again later"}
        return await _template_page(request, staff, template_id, form, {}, test_form=fields,
                                    test_errors=test_errors, status=answer.status)  # fmt: skip

    @routes.get("/console/templates/{template_id}/versions/{version}")
    async def version_page(request: Request, template_id: str, version: str, staff: StaffDep) -> Response:
        answer = await staff.api.get(f"/v1/templates/{quote(template_id)}/versions", version=version)
        if not answer.ok or not version.isdigit():
            return _missing(request, staff, answer, "No such version")
        [shown] = answer.body
        context = {"version": shown, "template_id": template_id}
        return render(request, "templates/version.html", context, staff=staff)

    @routes.post("/console/templates/{template_id}/versions/{version}/restore")
    async def restore_version(request: Request, template_id: str, version: str, staff: StaffDep) -> Response:
        _fields, api = await staff.posted(request)
        answer = await staff.api.get(f"/v1/templates/{quote(template_id)}/versions", version=version)
        if not answer.ok or not version.isdigit():
            return _missing(request, staff, answer, "No such version")
        [old] = answer.body
        restored = {"id": template_id, "subject": old["subject"], "text": old["text"], "html": old["html"]}
        saved = await api.call("PUT", f"/v1/templates/{quote(template_id)}", json=restored)
        if not saved.ok:
            return _missing(request, staff, saved, "The version could not be restored")
        return RedirectResponse(f"/console/templates/{quote(template_id)}?restored={version}", status_code=303)

    return routes


async def _template_page(
    request: Request,
    staff: Any,
    template_id: str,
    form: dict[str, Any],
    errors: dict[str, str],
    *,
    test_form: dict[str, str] | None = None,
    test_errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    versions = await staff.api.get(f"/v1/templates/{quote(template_id)}/versions", limit=20)
    context = {
        "form": form,
        "errors": errors,
        "new": False,
        "versions": versions.body if versions.ok else [],
        "test_form": test_form or {},
        "test_errors": test_errors or {},
        "saved": request.query_params.get("saved"),
        "sent": request.query_params.get("sent"),
        "restored": request.query_params.get("restored"),
    }
    return _editor(request, staff, context, status=status)


def _missing(request: Request, staff: Any, answer: Answer, heading: str = "No such template") -> Response:
    status = answer.status if answer.status >= 400 else 404
    return render(request, "error.html", {"heading": heading, "message": answer.message}, staff=staff, status=status)
