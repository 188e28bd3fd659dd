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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SegmentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
TraitPath = Annotated[
    str,
    StringConstraints(pattern=r"^(traits\.[A-Za-z0-9_ .-]{1,100}|event_counts\..{1,200}|computed\.[a-z_]+|[a-z_]+)$"),
]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""An integer JSON (and ClickHouse) can carry exactly."""
Scalar = str | Int64 | float | bool


class TraitCondition(BaseModel):
    """A profile value compared with ``value``.

    ``trait``: a profile field (``orders``, ``revenue``, ``nps_latest``, ``last_seen`` …), a
    computed trait (``computed.rfm_segment``), an identify trait (``traits.plan``) or an
    event count since the first event (``event_counts.Order Completed``).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["trait"] = "trait"
    trait: TraitPath
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists"]
    value: Scalar | list[Scalar] | None = None


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
    op: Literal["eq", "gt", "gte", "lt", "lte"] = "gte"
    count: int = Field(default=1, ge=0, le=1_000_000_000)


class AllOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["all"] = "all"
    conditions: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["any"] = "any"
    conditions: list[Condition] = Field(min_length=1)


class NoneOf(BaseModel):
    """True when none of ``conditions`` is (``not``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["none"] = "none"
    conditions: list[Condition] = Field(min_length=1)


Condition = Annotated[TraitCondition | EventCondition | AllOf | AnyOf | NoneOf, Field(discriminator="kind")]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NoneOf.model_rebuild()


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
        if condition.op in ("exists", "not_exists"):
            return f"{condition.trait} {'is set' if condition.op == 'exists' else 'is not set'}"
        return f"{condition.trait} {_OPS[condition.op]} {condition.value!r}"
    if isinstance(condition, EventCondition):
        where = " with " + ", ".join(f"{k} = {v!r}" for k, v in condition.where.items()) if condition.where else ""
        return f"{condition.event}{where} {_OPS[condition.op]} {condition.count} times in {condition.within_days} days"
    joiner = {"all": " and ", "any": " or ", "none": " or "}[condition.kind]
    inner = joiner.join(explain(c) for c in condition.conditions)
    return f"not ({inner})" if condition.kind == "none" else f"({inner})"


_OPS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "in": "in", "not_in": "not in"}
