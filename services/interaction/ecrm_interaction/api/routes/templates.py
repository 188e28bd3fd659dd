"""Email templates: list, read, create or replace (each save kept as a version), delete (only
when no rule uses them), preview for a customer, send a test."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, StringConstraints

from ecrm_interaction.api.deps import Marketer, SessionDep, SettingsDep, Viewer
from ecrm_interaction.api.services import template_previews
from ecrm_interaction.engine.rendering import RenderError, unknown_names
from ecrm_interaction.engine.rules import TemplateParts, TemplateSpec
from ecrm_interaction.storage import audit, rules
from ecrm_interaction.storage.models import TemplateVersion
from ecrm_interaction.storage.store import aware

PARTS = ("subject", "text", "html")


class PreviewIn(TemplateParts):
    """An unsaved template (its parts) and the customer to render it for."""

    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TestSendIn(BaseModel):
    to: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)]
    """The address the test goes to."""
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """Whose data it is rendered with."""


class RenderedOut(BaseModel):
    subject: str
    text: str
    html: str | None


class VersionOut(BaseModel):
    template_id: str
    version: int
    saved_at: Any
    saved_by: str
    subject: str
    text: str | None = None
    html: str | None = None


def _version(row: TemplateVersion, *, whole: bool) -> VersionOut:
    return VersionOut(
        template_id=row.template_id, version=row.version, saved_at=aware(row.saved_at), saved_by=row.saved_by,
        subject=row.subject, text=row.text_body if whole else None, html=row.html_body if whole else None,
    )  # fmt: skip


def _refused(part: str, rule: str, message: str) -> HTTPException:
    return HTTPException(422, {"code": "invalid_request", "message": message,
                               "errors": [{"field": part, "rule": rule, "message": message}]})  # fmt: skip


def _known_names_only(parts: dict[str, str | None]) -> None:
    """422 naming the first part that uses a name templates are never given."""
    for part in PARTS:
        if (source := parts.get(part)) and (unknown := unknown_names(source)):
            raise _refused(part, "template_unknown_name", f"unknown name {', '.join(unknown)} in the {part}: "
                           "a template sees profile, traits, event, reason, rule, segments, recommendations, "
                           "reward, loyalty and unsubscribe_url")  # fmt: skip


def _render_refused(exc: RenderError) -> HTTPException:
    where = f" on line {exc.line}" if exc.line else ""
    return _refused(exc.part or "$", "render_failed", f"the {exc.part or 'template'} does not render{where}: {exc}")


def router() -> APIRouter:
    routes = APIRouter(tags=["rules"])

    @routes.get("/v1/templates")
    def list_templates(_who: Viewer, session: SessionDep) -> list[TemplateSpec]:
        return sorted(rules.templates(session).values(), key=lambda t: t.id)

    @routes.post("/v1/templates/preview")
    def preview_template(draft: PreviewIn, _who: Viewer, session: SessionDep) -> RenderedOut:
        """An unsaved template rendered for a customer with the real rendering (subject, text and
        HTML, without tracking); 422 naming the part (``subject``, ``text``, ``html``) that does
        not compile, uses an unknown name or fails to render."""
        _known_names_only(draft.model_dump())
        template = TemplateSpec.model_construct(id="preview", subject=draft.subject, text=draft.text, html=draft.html)
        try:
            rendered = template_previews.preview(session, template, draft.customer_id)
        except RenderError as exc:
            raise _render_refused(exc) from exc
        return RenderedOut(subject=rendered.subject, text=rendered.text, html=rendered.html)

    @routes.get("/v1/templates/{template_id}")
    def get_template(template_id: str, _who: Viewer, session: SessionDep) -> TemplateSpec:
        found = rules.template(session, template_id)
        if found is None:
            raise HTTPException(404, "template_not_found")
        return found

    @routes.put("/v1/templates/{template_id}")
    def put_template(template_id: str, template: TemplateSpec, who: Marketer, session: SessionDep) -> TemplateSpec:
        """Create or replace a template; a changed one is kept as its next version. 422 naming
        the part that does not compile or uses a name templates are never given."""
        if template.id != template_id:
            raise HTTPException(422, "the template's id must be the one in the path")
        _known_names_only(template.model_dump())
        rules.upsert_rules(session, [template], [], who.name)
        return template

    @routes.get("/v1/templates/{template_id}/versions")
    def template_versions(
        template_id: str,
        _who: Viewer,
        session: SessionDep,
        version: Annotated[int | None, Query(ge=1)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[VersionOut]:
        """The saved versions, newest first, their subjects only; with ``version``, that one
        alone with all its parts (404 ``version_not_found``). Restoring a version is saving its
        parts again (``PUT``), which keeps them as the newest version."""
        if version is not None:
            row = rules.template_version(session, template_id, version)
            if row is None:
                raise HTTPException(404, "version_not_found")
            return [_version(row, whole=True)]
        found = rules.template_versions(session, template_id, limit)
        if not found and rules.template(session, template_id) is None:
            raise HTTPException(404, "template_not_found")
        return [_version(row, whole=False) for row in found]

    @routes.post("/v1/templates/{template_id}/test-send")
    async def test_send(
        template_id: str, request: TestSendIn, who: Marketer, session: SessionDep, settings: SettingsDep
    ) -> dict[str, Any]:
        """Render the saved template for ``customer_id`` and send it to ``to`` as a test
        (``[Test]`` subject, ``X-ECRM-Test`` header, no tracking, no contact policy, counted as no
        rule's send); audited. 502 ``smtp_failed`` when the mail server refuses or is down."""
        template = await asyncio.to_thread(rules.template, session, template_id)
        if template is None:
            raise HTTPException(404, "template_not_found")
        try:
            rendered = await asyncio.to_thread(template_previews.preview, session, template, request.customer_id)
        except RenderError as exc:
            raise _render_refused(exc) from exc
        try:
            send_id = await template_previews.test_send(settings, rendered, request.to)
        except Exception as exc:
            raise HTTPException(502, "smtp_failed") from exc
        detail = {"to": request.to, "customer_id": request.customer_id, "send_id": send_id}
        await asyncio.to_thread(audit.record, session, who.name, "test_send", "template", template_id, detail)
        return {"send_id": send_id, "to": request.to, "subject": f"[Test] {rendered.subject}"}

    @routes.delete("/v1/templates/{template_id}", status_code=204)
    def delete_template(template_id: str, who: Marketer, session: SessionDep) -> Response:
        """Delete a template; 409 (naming them) while rules use it."""
        users = rules.delete_template(session, template_id, who.name)
        if users is None:
            raise HTTPException(404, "template_not_found")
        if users:
            raise HTTPException(409, f"template {template_id!r} is used by the rules {users}: change them first")
        return Response(status_code=204)

    return routes
