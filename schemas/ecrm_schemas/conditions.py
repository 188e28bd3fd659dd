"""Conditions on a customer: the comparison operators, trait conditions and the combinators.

One model for both evaluators: the aggregator turns a segment definition's tree into SQL
(``ecrm_schemas.segment_sql``), the interaction service evaluates a rule's conditions in
Python (``ecrm_interaction.engine.conditions``). Each context declares its own leaves
(segments: traits and event counts; rules: traits, segment membership, consent) and closes
the tree with the combinators here::

    SegmentCondition = TypeAliasType("SegmentCondition", Annotated[
        TraitCondition | EventCondition | AllOf["SegmentCondition"] | AnyOf["SegmentCondition"]
        | NoneOf["SegmentCondition"], Field(discriminator="kind")])

Semantics both evaluators keep: a missing value fails every comparison but ``ne``, ``not_in``
and ``not_exists``; numbers compare as numbers, times as times; ``none`` is true when none
of its conditions is. Every operator of :data:`OPERATORS` and combinator of
:data:`COMBINATORS` has a Python evaluator and an SQL translation (``tests/test_drift_owners.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ecrm_schemas.profile_paths import ProfilePath, parse_path

Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists"]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
"""How a trait condition compares a profile value with its ``value``."""
CountOperator = Literal["eq", "gt", "gte", "lt", "lte"]
"""The operators an event-count condition compares a count with (a subset of :data:`Operator`)."""
Combinator = Literal["all", "any", "none"]
COMBINATORS: tuple[Combinator, ...] = get_args(Combinator)

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""An integer JSON (and ClickHouse) can carry exactly."""
Scalar = str | Int64 | float | bool

OPERATOR_WORDS: dict[str, str] = {
    "eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "in": "in", "not_in": "not in",
    "exists": "is set", "not_exists": "is not set",
}  # fmt: skip


class TraitCondition(BaseModel):
    """A profile value compared with ``value``.

    ``trait``: a :data:`~ecrm_schemas.profile_paths.ProfilePath`: a profile field (``orders``,
    ``revenue``, ``nps_latest``, ``last_seen`` …), a computed trait (``computed.rfm_segment``),
    an identify trait (``traits.plan``) or an event count since the first event
    (``event_counts.Order Completed``).
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["trait"] = "trait"
    trait: ProfilePath
    op: Operator
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> TraitCondition:
        check_value(self.trait, self.op, self.value)
        return self


C = TypeVar("C")


class AllOf(BaseModel, Generic[C]):
    """True when every one of ``conditions`` is."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["all"] = "all"
    conditions: list[C] = Field(min_length=1)


class AnyOf(BaseModel, Generic[C]):
    """True when at least one of ``conditions`` is."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["any"] = "any"
    conditions: list[C] = Field(min_length=1)


class NoneOf(BaseModel, Generic[C]):
    """True when none of ``conditions`` is (``not``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["none"] = "none"
    conditions: list[C] = Field(min_length=1)


COMBINATIONS = (AllOf, AnyOf, NoneOf)
"""For ``isinstance``: a node that combines ``conditions`` by its ``kind``."""


def explain_trait(condition: TraitCondition) -> str:
    if condition.op in ("exists", "not_exists"):
        return f"{condition.trait} {OPERATOR_WORDS[condition.op]}"
    return f"{condition.trait} {OPERATOR_WORDS[condition.op]} {condition.value!r}"


def explain_combination(kind: str, parts: list[str]) -> str:
    """A combination in words, given its conditions in words."""
    inner = (" and " if kind == "all" else " or ").join(parts)
    return f"not ({inner})" if kind == "none" else f"({inner})"


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
    kind = parse_path(trait).kind
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
