"""Render an email template with a customer's data (pure).

Templates run in Jinja2's sandbox (no access to Python internals); HTML parts are
autoescaped so a customer's name cannot inject markup. Undefined values render empty, so a
missing trait never breaks a send: use ``{{ traits.firstName | default("there") }}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ecrm_interaction.rule_matching import TemplateSpec
from ecrm_schemas.profile import CustomerProfile, TriggerEvent

_TEXT = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)
_HTML = ImmutableSandboxedEnvironment(autoescape=True, undefined=ChainableUndefined)


class RenderError(ValueError):
    """The template could not be rendered (syntax error or a refused operation)."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


def template_context(profile: CustomerProfile, trigger: TriggerEvent) -> dict[str, Any]:
    data = profile.model_dump(mode="json")
    return {"profile": data, "traits": data["traits"], "event": trigger.model_dump(mode="json")}


def render_email(template: TemplateSpec, profile: CustomerProfile, trigger: TriggerEvent) -> RenderedEmail:
    context = template_context(profile, trigger)
    try:
        subject = _TEXT.from_string(template.subject).render(context)
        text = _TEXT.from_string(template.text).render(context)
        html = _HTML.from_string(template.html).render(context) if template.html else None
    except TemplateError as exc:
        raise RenderError(f"template {template.id!r}: {exc}") from exc
    return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)
