"""Segments: marketers' definitions, and the membership changes the aggregator emits.

A definition is a condition tree over a customer's profile and their recent events:

    {"id": "hesitant-p1", "name": "Viewed P1 often, no order",
     "condition": {"kind": "all", "conditions": [
         {"kind": "event", "event": "Product Viewed", "where": {"product_id": "p1"},
          "within_days": 7, "op": "gte", "count": 3},
         {"kind": "event", "event": "Order Completed", "within_days": 7, "op": "eq", "count": 0}]}}

Definitions travel on the compacted segment-definitions topic, keyed by id (an empty value
deletes one); the aggregator follows the topic and re-evaluates without a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from typing_extensions import TypeAliasType

from ecrm_schemas.conditions import (
    OPERATOR_WORDS,
    AllOf,
    AnyOf,
    CountOperator,
    NoneOf,
    Scalar,
    TraitCondition,
    explain_combination,
    explain_trait,
)

SegmentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class EventCondition(BaseModel):
    """How many times the customer did ``event`` (a track event's name, or ``page``,
    ``identify``…) in the last ``within_days`` days, optionally only with the properties ``where``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["event"] = "event"
    event: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    where: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")], Scalar] = Field(
        default_factory=dict
    )
    within_days: int = Field(ge=1, le=3650)
    op: CountOperator = "gte"
    count: int = Field(default=1, ge=0, le=1_000_000_000)


if TYPE_CHECKING:  # mypy does not follow a recursive TypeAliasType
    SegmentCondition = TraitCondition | EventCondition | AllOf[Any] | AnyOf[Any] | NoneOf[Any]
else:
    SegmentCondition = TypeAliasType(
        "SegmentCondition",
        Annotated[
            TraitCondition
            | EventCondition
            | AllOf["SegmentCondition"]
            | AnyOf["SegmentCondition"]
            | NoneOf["SegmentCondition"],
            Field(discriminator="kind"),
        ],
    )
"""A segment's condition: trait and event-count conditions, combined (:mod:`ecrm_schemas.conditions`)."""
Condition = SegmentCondition


class SegmentDefinition(BaseModel):
    """One segment, as marketers define it; the value of the segment-definitions topic."""

    model_config = ConfigDict(extra="forbid")
    id: SegmentId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: str = ""
    condition: Condition
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


def parse_definition(payload: bytes | str | dict[str, Any]) -> SegmentDefinition:
    """The one validation of a segment definition, for the API, the CLI and the aggregator:
    the shape, every trait a field the profile has, every value of that field's kind.

    Raises ``pydantic.ValidationError`` naming each field and rule.
    """
    if isinstance(payload, dict):
        return SegmentDefinition.model_validate(payload)
    return SegmentDefinition.model_validate_json(payload)


def definition_errors(exc: ValidationError) -> list[dict[str, str]]:
    """A definition's errors as ``{"field", "rule", "message"}`` (the field as a dotted path)."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "$", "rule": e["type"], "message": e["msg"]}
        for e in exc.errors(include_url=False)
    ]


class SegmentMembershipChanged(BaseModel):
    """A customer entered or left a segment; the value of the segment-membership topic."""

    event_id: str
    """Deterministic for the same change and cause: consumers deduplicate on it."""
    type: Literal["segment.entered", "segment.exited"]
    segment_id: str
    segment_name: str
    customer_id: str
    at: datetime
    trigger: Literal["event", "timer", "definition"]
    """What made the aggregator look: new events, time passing, or a new or changed definition."""
    trigger_message_ids: list[str] = Field(default_factory=list)
    """The events folded just before, for ``trigger="event"``."""
    reason: str
    """The definition's condition in words, met (entered) or no longer met (exited)."""
    profile_version: int | None = None
    """For ``trigger="event"``: the version of the customer's profile the evaluation saw (that
    profile's change is on ``ecrm.profile-changes``); a message about the change renders a
    profile at least this new."""
    backfill: bool = False
    """Imported history was among its causes (:mod:`ecrm_schemas.backfill`): it fires no rule."""

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


def explain(condition: Any) -> str:
    """A condition in words, for reasons and for listing definitions."""
    if isinstance(condition, TraitCondition):
        return explain_trait(condition)
    if isinstance(condition, EventCondition):
        where = " with " + ", ".join(f"{k} = {v!r}" for k, v in condition.where.items()) if condition.where else ""
        times = f"{OPERATOR_WORDS[condition.op]} {condition.count} times in {condition.within_days} days"
        return f"{condition.event}{where} {times}"
    return explain_combination(condition.kind, [explain(c) for c in condition.conditions])
