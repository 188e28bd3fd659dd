"""Conditions on a customer at decision time (pure): traits, segments, consent.

The Python evaluator of :mod:`ecrm_schemas.conditions` (the aggregator's SQL is the other):
trait conditions read the profile as the aggregator sent it through the one path grammar
(:mod:`ecrm_schemas.profile_paths`: ``orders``, ``computed.churn_risk``, ``traits.plan``,
``event_counts.Order Completed``) with the same meaning as in segment definitions: a missing
value fails every comparison but ``ne``, ``not_in`` and ``not_exists``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecrm_interaction.engine.rules import Condition, HasConsent, InSegment
from ecrm_schemas.conditions import COMBINATIONS, TraitCondition, explain_combination, explain_trait
from ecrm_schemas.profile_paths import read


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known of a customer when a rule decides."""

    profile: dict[str, Any]
    """The profile, in the contract's JSON shape (``CustomerProfile``)."""
    segments: frozenset[str] = frozenset()
    consent: dict[str, bool] = field(default_factory=dict)
    """channel → granted; a channel never asked about is absent."""
    loyalty: dict[str, Any] = field(default_factory=dict)
    """``points`` and ``tier`` of the loyalty program."""


def lookup(profile: dict[str, Any], path: str, loyalty: dict[str, Any] | None = None) -> Any:
    """The value at a profile path (:func:`ecrm_schemas.profile_paths.read`), or None."""
    return read(profile, path, loyalty)


def _exists(actual: Any, expected: Any) -> bool:
    return actual not in (None, "") if expected in (None, True) else actual in (None, "")


def _among(actual: Any, expected: Any) -> bool:
    return any(_equal(actual, v) for v in (expected if isinstance(expected, list) else [expected]))


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare_ordered(actual: Any, expected: Any) -> bool:
        if actual is None:
            return False
        left, right = _comparable(actual, expected)
        return left is not None and right is not None and test(left, right)

    return compare_ordered


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda actual, expected: actual is not None and _equal(actual, expected),
    "ne": lambda actual, expected: actual is None or not _equal(actual, expected),
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
    "in": _among,
    "not_in": lambda actual, expected: not _among(actual, expected),
    "exists": _exists,
    "not_exists": lambda actual, _expected: actual in (None, ""),
}
"""The Python evaluation of each operator of :data:`ecrm_schemas.conditions.OPERATORS`."""
COMBINATORS: dict[str, Callable[[Iterable[bool]], bool]] = {
    "all": all,
    "any": any,
    "none": lambda results: not any(results),
}
"""The Python evaluation of each combinator of :data:`ecrm_schemas.conditions.COMBINATORS`."""


def compare(actual: Any, op: str, expected: Any) -> bool:
    """One comparison with the segment language's semantics (numbers as numbers, times as times)."""
    return OPERATORS[op](actual, expected)


def _equal(actual: Any, expected: Any) -> bool:
    left, right = _comparable(actual, expected)
    return left == right if left is not None and right is not None else actual == expected


def _comparable(actual: Any, expected: Any) -> tuple[Any, Any]:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return bool(actual), bool(expected)
    for convert in (float, _time):
        try:
            return convert(actual), convert(expected)
        except (TypeError, ValueError):
            continue
    return str(actual), str(expected)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise TypeError(value)


def holds(condition: Condition | None, facts: Facts) -> bool:
    if condition is None:
        return True
    if isinstance(condition, TraitCondition):
        return compare(lookup(facts.profile, condition.trait, facts.loyalty), condition.op, condition.value)
    if isinstance(condition, InSegment):
        return (condition.segment in facts.segments) == condition.member
    if isinstance(condition, HasConsent):
        return facts.consent.get(condition.channel) is True
    assert isinstance(condition, COMBINATIONS), condition
    return COMBINATORS[condition.kind](holds(c, facts) for c in condition.conditions)


def describe(condition: Condition) -> str:
    """A condition in words, for dry runs and decision reasons."""
    if isinstance(condition, TraitCondition):
        return explain_trait(condition)
    if isinstance(condition, InSegment):
        return f"{'in' if condition.member else 'not in'} segment {condition.segment}"
    if isinstance(condition, HasConsent):
        return f"consented to {condition.channel}"
    assert isinstance(condition, COMBINATIONS), condition
    return explain_combination(condition.kind, [describe(c) for c in condition.conditions])
