"""Email templates: list, create or replace, delete (only when no rule uses them)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from ecrm_interaction.api.deps import Marketer, SessionDep, Viewer
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import rules


def router() -> APIRouter:
    routes = APIRouter(tags=["rules"])

    @routes.get("/v1/templates")
    def list_templates(_who: Viewer, session: SessionDep) -> list[TemplateSpec]:
        return sorted(rules.templates(session).values(), key=lambda t: t.id)

    @routes.put("/v1/templates/{template_id}")
    def put_template(template_id: str, template: TemplateSpec, who: Marketer, session: SessionDep) -> TemplateSpec:
        if template.id != template_id:
            raise HTTPException(422, "the template's id must be the one in the path")
        rules.upsert_rules(session, [template], [], who.name)
        return template

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
