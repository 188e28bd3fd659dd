"""Which rules fire, for what (pure): events, trait crossings, segment changes, schedules.

A firing is one rule for one customer for one cause; its ``dedup_key`` is the same when
the cause is delivered again (a redelivered profile change, a restart), so each firing acts
once: ``rule:customer`` for ``once_per_customer`` rules, else ``rule:customer:cause``.

The interaction service's own events (``TriggerEvent.origin``, from the Kafka header only it
sets: :mod:`ecrm_schemas.own_events`) never trigger rules, so a rule cannot feed on what rules
did; nor does imported history (events marked backfill, :mod:`ecrm_schemas.backfill`), or the
trait crossings and segment changes it took part in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecrm_interaction.engine.conditions import compare
from ecrm_interaction.engine.rules import EventMatch, EventTrigger, RuleSpec, SegmentTrigger, TraitTrigger
from ecrm_schemas.own_events import OWN_MESSAGE_ID_PREFIX, EventOrigin
from ecrm_schemas.profile import ProfileChanged, TriggerEvent
from ecrm_schemas.profile_paths import parse_path, read
from ecrm_schemas.segments import SegmentMembershipChanged

OWN_EVENTS = OWN_MESSAGE_ID_PREFIX
"""The prefix of the message ids of the service's own events: a namespace, not a mark of trust
(a client may send any message id); the mark is ``TriggerEvent.origin``."""


def is_own(trigger: TriggerEvent) -> bool:
    """Whether the interaction service itself reported this event (the producer's Kafka header)."""
    return trigger.origin is EventOrigin.INTERACTION


@dataclass(frozen=True, slots=True)
class Firing:
    rule: RuleSpec
    customer_id: str
    cause: str
    """What made it fire, unique per occurrence: ``m:<message id>``, ``s:<segment event id>``,
    ``t:<trait>:<profile version>``, ``c:<schedule slot>``."""
    reason: str
    """In words, for the decision log and notifications."""
    trigger: dict[str, Any] = field(default_factory=dict)
    """What templates see as ``event``: the triggering event (type, event, properties,
    timestamp, message_id), or the segment change, trait crossing or schedule slot."""
    occurred_at: datetime | None = None
    """When the cause happened (the event's timestamp, the segment change's time), for the
    rule's ``max_event_age``; None for trait crossings and schedules."""

    @property
    def dedup_key(self) -> str:
        if self.rule.once_per_customer:
            return f"{self.rule.id}:{self.customer_id}"
        return f"{self.rule.id}:{self.customer_id}:{self.cause}"


def property_value(properties: dict[str, Any], name: str) -> Any:
    """A property by name, or by a dotted path into nested objects."""
    if name in properties:
        return properties[name]
    value: Any = properties
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def event_matches(match: EventMatch, trigger: TriggerEvent) -> bool:
    name = trigger.event if trigger.type == "track" else trigger.type
    if name != match.event:
        return False
    for key, wanted in match.where.items():
        actual = property_value(trigger.properties, key)
        if isinstance(wanted, dict):
            if not all(compare(actual, op, value) for op, value in wanted.items()):
                return False
        elif not compare(actual, "in" if isinstance(wanted, list) else "eq", wanted):
            return False
    return True


def _describe_match(match: EventMatch) -> str:
    if not match.where:
        return match.event
    parts = []
    for key, wanted in match.where.items():
        if isinstance(wanted, dict):
            parts += [f"{key} {op} {value!r}" for op, value in wanted.items()]
        else:
            parts.append(f"{key} = {wanted!r}")
    return f"{match.event} with {', '.join(parts)}"


def trigger_context(trigger: TriggerEvent) -> dict[str, Any]:
    return trigger.model_dump(mode="json")


def event_firings(change: ProfileChanged, rules: list[RuleSpec]) -> list[Firing]:
    """Event-triggered rules, for each of the change's events, in event order."""
    firings = []
    for trigger in change.triggers:
        if is_own(trigger) or trigger.backfill:
            continue
        for rule in rules:
            if rule.enabled and isinstance(rule.trigger, EventTrigger) and event_matches(rule.trigger, trigger):
                firings.append(
                    Firing(
                        rule,
                        change.customer_id,
                        f"m:{trigger.message_id}",
                        _describe_match(rule.trigger),
                        trigger_context(trigger),
                        trigger.timestamp,
                    )
                )
    return firings


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """The enabled event and trait rules by what can make them fire, built once a batch, so that
    each change is matched only against its candidates (most changes have none)."""

    rules: list[RuleSpec]
    by_event: dict[str, set[str]]
    """Event name (``page``, ``identify``… for the other types) → ids of the rules on it."""
    by_trait: dict[str, set[str]]
    """Profile path → ids of the rules on its crossings."""

    @classmethod
    def of(cls, rules: list[RuleSpec]) -> RuleIndex:
        by_event: dict[str, set[str]] = {}
        by_trait: dict[str, set[str]] = {}
        for rule in rules:
            if not rule.enabled:
                continue
            if isinstance(rule.trigger, EventTrigger):
                by_event.setdefault(rule.trigger.event, set()).add(rule.id)
            elif isinstance(rule.trigger, TraitTrigger):
                by_trait.setdefault(rule.trigger.trait, set()).add(rule.id)
        return cls(rules, by_event, by_trait)

    def candidates(self, change: ProfileChanged) -> list[RuleSpec]:
        """The rules that may fire for ``change`` (:func:`event_firings` and :func:`trait_firings`
        give the same firings on them as on every rule), in rule order."""
        ids: set[str] = set()
        for trigger in change.triggers:
            ids |= self.by_event.get((trigger.event or "") if trigger.type == "track" else trigger.type, set())
        for path in change.changed:
            ids |= self.by_trait.get(path, set())
        return [rule for rule in self.rules if rule.id in ids] if ids else []


def crossed(trigger: TraitTrigger, before: Any, after: Any) -> bool:
    """Whether going from ``before`` to ``after`` enters the trigger's state.

    ``becomes``: the value now equals it and did not before (a new profile counts).
    ``above`` / ``below``: there was a value before, on the other side of the threshold.
    """
    if trigger.becomes is not None:
        return compare(after, "eq", trigger.becomes) and not compare(before, "eq", trigger.becomes)
    if before is None or after is None:
        return False
    if trigger.above is not None:
        return compare(after, "gt", trigger.above) and not compare(before, "gt", trigger.above)
    assert trigger.below is not None
    return compare(after, "lt", trigger.below) and not compare(before, "lt", trigger.below)


def trait_firings(change: ProfileChanged, rules: list[RuleSpec]) -> list[Firing]:
    """Rules on a profile trait that this change made cross (``previous`` holds the value before);
    none for a change imported history took part in."""
    if change.backfill:
        return []
    profile: dict[str, Any] | None = None
    firings = []
    for rule in rules:
        trigger = rule.trigger
        if not rule.enabled or not isinstance(trigger, TraitTrigger) or trigger.trait not in change.changed:
            continue
        if profile is None:  # most changes cross no rule's trait: dumped only when one may
            profile = change.profile.model_dump(mode="json")
        before, after = change.previous.get(trigger.trait), read(profile, trigger.trait)
        if crossed(trigger, before, after):
            firings.append(_trait_firing(rule, trigger, change.customer_id, before, after, change.profile.version))
    return firings


def loyalty_firings(
    rules: list[RuleSpec], customer_id: str, before: dict[str, Any], after: dict[str, Any], cause: str
) -> list[Firing]:
    """Rules on ``loyalty.tier`` / ``loyalty.points`` after the program changed a balance."""
    firings = []
    for rule in rules:
        trigger = rule.trigger
        if not rule.enabled or not isinstance(trigger, TraitTrigger):
            continue
        ref = parse_path(trigger.trait, loyalty=True)
        if ref.root != "loyalty":
            continue
        name = ref.name
        if crossed(trigger, before.get(name), after.get(name)):
            firing = _trait_firing(rule, trigger, customer_id, before.get(name), after.get(name), 0)
            firings.append(Firing(rule, customer_id, f"l:{trigger.trait}:{cause}", firing.reason, firing.trigger))
    return firings


def _trait_firing(
    rule: RuleSpec, trigger: TraitTrigger, customer: str, before: Any, after: Any, version: int
) -> Firing:
    if trigger.becomes is not None:
        reason = f"{trigger.trait} became {after!r} (was {before!r})"
    else:
        side = f"above {trigger.above}" if trigger.above is not None else f"below {trigger.below}"
        reason = f"{trigger.trait} went {side}: {before!r} → {after!r}"
    context = {"type": "trait", "trait": trigger.trait, "before": before, "after": after}
    return Firing(rule, customer, f"t:{trigger.trait}:{version}", reason, context)


def segment_firings(change: SegmentMembershipChanged, rules: list[RuleSpec]) -> list[Firing]:
    if change.backfill:
        return []
    kind = change.type.removeprefix("segment.")
    firings = []
    for rule in rules:
        trigger = rule.trigger
        if (
            rule.enabled
            and isinstance(trigger, SegmentTrigger)
            and trigger.segment == change.segment_id
            and trigger.change == kind
        ):
            context = {
                "type": change.type,
                "segment_id": change.segment_id,
                "segment_name": change.segment_name,
                "reason": change.reason,
                "timestamp": change.at.isoformat(),
                "profile_version": change.profile_version,
            }
            firings.append(
                Firing(
                    rule,
                    change.customer_id,
                    f"s:{change.event_id}",
                    f"{kind} segment {change.segment_name}: {change.reason}",
                    context,
                    change.at,
                )
            )
    return firings


def schedule_firings(rule: RuleSpec, customers: list[str], slot: datetime) -> list[Firing]:
    context = {"type": "schedule", "slot": slot.isoformat()}
    reason = f"scheduled {slot:%Y-%m-%d %H:%M} UTC"
    return [Firing(rule, customer, f"c:{slot.isoformat()}", reason, context) for customer in customers]


def cancels(match: list[EventMatch], trigger: TriggerEvent) -> bool:
    """Whether ``trigger`` is one of the events that cancel a wait."""
    if is_own(trigger) or trigger.backfill:  # an imported past order cancels no wait
        return False
    return any(event_matches(m, trigger) for m in match)


def wait_cancelled_by(match: list[EventMatch], change: ProfileChanged, cause: str) -> TriggerEvent | None:
    """The first of the change's events that cancels a wait planned for ``cause``, if any.

    A wait started by one of the change's own events (``m:<message id>``, as a "buy now" sends
    the cart add and the order in one batch) is cancelled only by an event that came after it:
    a later timestamp, or the same timestamp and later in the change. A wait planned for
    anything else was planned before this change, and any of its events counts.
    """
    order = {trigger.message_id: (trigger.timestamp, index) for index, trigger in enumerate(change.triggers)}
    started = order.get(cause.removeprefix("m:")) if cause.startswith("m:") else None
    for index, trigger in enumerate(change.triggers):
        if started is not None and (trigger.timestamp, index) <= started:
            continue
        if cancels(match, trigger):
            return trigger
    return None
