"""Rules and templates from a YAML file (how example rules ship and how teams keep them in git).

templates:
  - id: welcome
    subject: "Welcome, {{ traits.firstName | default('there') }}"
    text: "..."
    html: "..."
rules:
  - id: welcome-on-first-identify
    name: Welcome email on a customer's first identify
    trigger_event: identify
    template_id: welcome
    once_per_customer: true
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from ecrm_interaction.rule_matching import RuleSpec, TemplateSpec


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: list[TemplateSpec] = []
    rules: list[RuleSpec] = []

    @model_validator(mode="after")
    def _templates_exist(self) -> RulesFile:
        known = {t.id for t in self.templates}
        missing = sorted({r.template_id for r in self.rules} - known)
        if missing:
            raise ValueError(f"rules refer to templates not defined in the file: {missing}")
        return self


def load_rules_file(path: Path) -> RulesFile:
    """Parse and validate a rules file; raises ``pydantic.ValidationError`` or ``yaml.YAMLError``."""
    return RulesFile.model_validate(yaml.safe_load(path.read_text()) or {})
