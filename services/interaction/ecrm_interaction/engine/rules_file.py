"""Rules, templates and the loyalty program from a YAML file (how teams keep them in git).

templates:
  - id: welcome
    subject: "Welcome, {{ traits.firstName | default('there') }}"
    text: "..."
    html: "..."
rules:
  - id: welcome-on-first-identify
    name: Welcome email on a customer's first identify
    trigger: {kind: event, event: identify}
    once_per_customer: true
    actions: [{kind: email, template: welcome}]
loyalty:                      # optional
  points_per_unit: 1
  events: {Survey Answered: 20}
  tiers: [{name: bronze, min_points: 0}, {name: gold, min_points: 2000}]
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec, TemplateSpec


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: list[TemplateSpec] = []
    rules: list[RuleSpec] = []
    loyalty: LoyaltyProgram | None = None

    @model_validator(mode="after")
    def _templates_exist(self) -> RulesFile:
        known = {t.id for t in self.templates}
        missing = sorted({t for r in self.rules for t in r.email_templates()} - known)
        if missing:
            raise ValueError(f"rules refer to templates not defined in the file: {missing}")
        return self


def parse_rules(text: str) -> RulesFile:
    """Parse and validate rules YAML; raises ``pydantic.ValidationError`` or ``yaml.YAMLError``."""
    return RulesFile.model_validate(yaml.safe_load(text) or {})


def load_rules_file(path: Path) -> RulesFile:
    return parse_rules(path.read_text())
