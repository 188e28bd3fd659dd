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

import difflib
import types
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ecrm_schemas.profile import ComputedTraits, CustomerProfile

FieldKind = Literal["number", "text", "time"]
NOT_SEGMENTABLE = frozenset({
    "traits", "computed", "positions", "version", "source_partition", "source_offset", "merged_into",
    "engagement_raw", "engagement_at", "as_of",
})  # fmt: skip
"""Profile fields no condition reads: containers with their own paths, and bookkeeping."""


def _kind(annotation: Any) -> FieldKind | Literal["counts"] | None:
    """What a profile field's type is to a condition: number, text, time, or a name → count map."""
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if len(options) != 1:
            return None
        annotation = options[0]
    if get_origin(annotation) is Literal or annotation is str:
        return "text"
    if get_origin(annotation) is dict:
        return "counts" if get_args(annotation) == (str, int) else None
    if annotation in (int, float, Decimal):
        return "number"
    return "time" if annotation is datetime else None


def _fields_of(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    return {
        prefix + name: kind
        for name, info in model.model_fields.items()
        if name not in NOT_SEGMENTABLE and (kind := _kind(info.annotation)) is not None
    }


_PROFILE_KINDS = {**_fields_of(CustomerProfile), **_fields_of(ComputedTraits, "computed.")}
PROFILE_FIELDS: dict[str, FieldKind] = {name: kind for name, kind in _PROFILE_KINDS.items() if kind != "counts"}
"""Every profile value a trait condition can compare (``orders``, ``computed.churn_risk`` …)
and its kind, derived from :class:`~ecrm_schemas.profile.CustomerProfile`: the profile's
fields are the one list, here, in the aggregator's folding and in ClickHouse."""
COUNT_FIELDS: frozenset[str] = frozenset(name for name, kind in _PROFILE_KINDS.items() if kind == "counts")
"""The profile's name → count maps (``event_counts``, ``page_views_by_name`` …), read as
``<map>.<name>`` (a number, 0 for a name never counted)."""

SegmentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
TraitPath = Annotated[
    str,
    StringConstraints(pattern=r"^(traits\.[A-Za-z0-9_ .-]{1,100}|[a-z_]+\..{1,200}|[a-z_]+)$"),
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

    @field_validator("trait")
    @classmethod
    def _known_field(cls, trait: str) -> str:
        field_kind(trait)
        return trait

    @model_validator(mode="after")
    def _value_fits(self) -> TraitCondition:
        check_value(self.trait, self.op, self.value)
        return self


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


def field_kind(trait: str) -> FieldKind | Literal["json"]:
    """The kind of the profile value ``trait`` names (``json`` for an identify trait).

    Raises ``PydanticCustomError("unknown_profile_field")`` when the profile has no such field.
    """
    if trait.startswith("traits."):
        return "json"
    prefix, dot, _name = trait.partition(".")
    if dot and prefix in COUNT_FIELDS:
        return "number"
    kind = PROFILE_FIELDS.get(trait)
    if kind is not None:
        return kind
    known = sorted(PROFILE_FIELDS) + [f"{name}.<name>" for name in sorted(COUNT_FIELDS)] + ["traits.<trait>"]
    close = difflib.get_close_matches(trait, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise PydanticCustomError(
        "unknown_profile_field",
        "no profile field '{trait}'{hint}; known: {known}",
        {"trait": trait, "hint": hint, "known": ", ".join(known)},
    )


_TIME = TypeAdapter(datetime)


def check_value(trait: str, op: str, value: Any) -> None:
    """Whether ``value`` can be compared with ``trait`` by ``op``; raises ``PydanticCustomError``."""
    if op in ("exists", "not_exists"):
        return
    if value is None:
        raise PydanticCustomError("value_required", "'{op}' needs a value", {"op": op})
    values = value if isinstance(value, list) else [value]
    if op not in ("in", "not_in") and isinstance(value, list):
        raise PydanticCustomError("scalar_required", "'{op}' compares with one value, not a list", {"op": op})
    kind = field_kind(trait)
    for item in values:
        if kind == "number" and (isinstance(item, bool) or not isinstance(item, int | float)):
            raise PydanticCustomError(
                "number_required", "'{trait}' is a number; {value} is not", {"trait": trait, "value": repr(item)}
            )
        if kind == "time":
            try:
                _TIME.validate_python(item, strict=False)
            except ValidationError:
                raise PydanticCustomError(
                    "datetime_required",
                    "'{trait}' is a time; {value} is not an ISO 8601 date and time",
                    {"trait": trait, "value": repr(item)},
                ) from None


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
