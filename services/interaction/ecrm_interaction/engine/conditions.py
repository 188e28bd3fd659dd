"""Conditions on a customer at decision time (pure): traits, segments, consent.

Trait conditions read the profile as the aggregator sent it (``orders``,
``computed.churn_risk``, ``traits.plan``, ``event_counts.Order Completed``) with the same
meaning as in segment definitions: a missing value fails every comparison but ``ne``,
``not_in`` and ``not_exists``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecrm_interaction.engine.rules import AllOf, AnyOf, Condition, HasConsent, InSegment, NoneOf
from ecrm_schemas.segments import TraitCondition, explain


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
    """The value at a trait path, or None."""
    if path.startswith("traits."):
        return (profile.get("traits") or {}).get(path.removeprefix("traits."))
    if path.startswith("event_counts."):
        return (profile.get("event_counts") or {}).get(path.removeprefix("event_counts."), 0)
    if path.startswith("computed."):
        return (profile.get("computed") or {}).get(path.removeprefix("computed."))
    if path.startswith("loyalty."):
        return (loyalty or {}).get(path.removeprefix("loyalty."))
    return profile.get(path)


def compare(actual: Any, op: str, expected: Any) -> bool:
    """One comparison with the segment language's semantics (numbers as numbers, times as times)."""
    if op == "exists":
        return actual not in (None, "") if expected in (None, True) else actual in (None, "")
    if op == "not_exists":
        return actual in (None, "")
    if op in ("in", "not_in"):
        values = expected if isinstance(expected, list) else [expected]
        found = any(_equal(actual, v) for v in values)
        return found if op == "in" else not found
    if actual is None:
        return op == "ne"
    if op == "eq":
        return _equal(actual, expected)
    if op == "ne":
        return not _equal(actual, expected)
    left, right = _comparable(actual, expected)
    if left is None or right is None:
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


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
    results = (holds(c, facts) for c in condition.conditions)
    if isinstance(condition, AllOf):
        return all(results)
    if isinstance(condition, AnyOf):
        return any(results)
    assert isinstance(condition, NoneOf)
    return not any(results)


def describe(condition: Condition) -> str:
    """A condition in words, for dry runs and decision reasons."""
    if isinstance(condition, TraitCondition):
        return explain(condition)
    if isinstance(condition, InSegment):
        return f"{'in' if condition.member else 'not in'} segment {condition.segment}"
    if isinstance(condition, HasConsent):
        return f"consented to {condition.channel}"
    joiner = {"all": " and ", "any": " or ", "none": " or "}[condition.kind]
    inner = joiner.join(describe(c) for c in condition.conditions)
    return f"not ({inner})" if condition.kind == "none" else f"({inner})"
