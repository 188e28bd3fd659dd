"""For one profile change, decide what to send to whom (pure).

    ProfileChanged ─▶ match_rules ─▶ for each match: recipient? ─▶ render_email ─▶ Decision

The contact policy of the walking skeleton is "the customer has an email address".
"""

from __future__ import annotations

from dataclasses import dataclass

from ecrm_interaction.rendering import RenderedEmail, RenderError, render_email
from ecrm_interaction.rule_matching import Match, RuleSpec, TemplateSpec, match_rules
from ecrm_schemas.profile import ProfileChanged


@dataclass(frozen=True, slots=True)
class Decision:
    match: Match
    recipient: str | None
    email: RenderedEmail | None
    skip_reason: str | None
    """Why nothing is sent (``no_email_address``, ``template_missing``, ``render_failed``); None to send."""


def decide(change: ProfileChanged, rules: list[RuleSpec], templates: dict[str, TemplateSpec]) -> list[Decision]:
    decisions = []
    for match in match_rules(change, rules):
        recipient = change.profile.email
        template = templates.get(match.rule.template_id)
        if template is None:
            decisions.append(Decision(match, recipient, None, "template_missing"))
            continue
        if not recipient:
            decisions.append(Decision(match, None, None, "no_email_address"))
            continue
        try:
            email = render_email(template, change.profile, match.trigger)
        except RenderError:
            decisions.append(Decision(match, recipient, None, "render_failed"))
            continue
        decisions.append(Decision(match, recipient, email, None))
    return decisions
