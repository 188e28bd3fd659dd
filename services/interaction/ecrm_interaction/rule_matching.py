"""Which rules fire for a profile change (pure).

A rule fires once for every triggering event whose type (``identify``, ``page``...) or
track name (``Order Completed``) equals the rule's ``trigger_event``. A rule marked
``once_per_customer`` fires at most once per customer, ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ecrm_schemas.profile import ProfileChanged, TriggerEvent


class TemplateSpec(BaseModel):
    """An email template as marketers write it (Jinja2)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    subject: str = Field(min_length=1, max_length=500)
    text: str = Field(min_length=1)
    html: str | None = None


class RuleSpec(BaseModel):
    """``when <trigger_event> happens, send <template_id>``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    name: str = Field(min_length=1, max_length=200)
    trigger_event: str = Field(min_length=1, max_length=200)
    template_id: str
    once_per_customer: bool = False
    enabled: bool = True

    @classmethod
    def from_row(cls, row: Any) -> RuleSpec:
        """From the ORM row (same field names)."""
        return cls.model_validate(row, from_attributes=True)


@dataclass(frozen=True, slots=True)
class Match:
    rule: RuleSpec
    trigger: TriggerEvent
    dedup_key: str
    """Sends with the same key happen at most once."""


def _fires_on(rule: RuleSpec, trigger: TriggerEvent) -> bool:
    return trigger.event == rule.trigger_event if trigger.type == "track" else trigger.type == rule.trigger_event


def match_rules(change: ProfileChanged, rules: list[RuleSpec]) -> list[Match]:
    """The (rule, trigger) pairs to act on, in trigger order."""
    matches = []
    for rule in rules:
        if not rule.enabled:
            continue
        for trigger in change.triggers:
            if not _fires_on(rule, trigger):
                continue
            if rule.once_per_customer:
                matches.append(Match(rule, trigger, f"{rule.id}:{change.customer_id}"))
                break
            matches.append(Match(rule, trigger, f"{rule.id}:{change.customer_id}:{trigger.message_id}"))
    return sorted(matches, key=lambda m: change.triggers.index(m.trigger))
