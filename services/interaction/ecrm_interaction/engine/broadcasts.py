"""A broadcast's audience and send plan (pure).

    segment members ─▶ contact policy (the engine's, as the dispatcher applies it) ─▶ excluded by reason
                                 │ allowed (or deferred to the end of quiet hours)
                                 ▼
                       holdout? (a fixed share, kept unsent) ─▶ variant by share ─▶ due time by rate

Who lands in the holdout and in which variant depends only on the broadcast's id and the
customer's (:func:`bucket`), so the preview and the schedule agree, and a customer keeps their
group whenever it is computed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ecrm_interaction.engine.contact_policy import Contact, History, PolicySettings, decide

HOLDOUT = "holdout"
"""The group of the customers kept unsent (their conversions are the baseline)."""
EXCLUDED = "excluded"
"""The group of the customers the contact policy refuses."""


def dedup_key(broadcast_id: str, customer_id: str) -> str:
    """The key of a broadcast's message to a customer: one per customer, ever."""
    return f"broadcast:{broadcast_id}:{customer_id}"


def bucket(broadcast_id: str, customer_id: str) -> float:
    """A number in [0, 1) fixed by the broadcast and the customer (SHA-256, evenly spread)."""
    digest = hashlib.sha256(f"{broadcast_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    template: str
    share: int
    """Percent of the sent part (the shares of a broadcast add up to 100)."""


def group_of(broadcast_id: str, customer_id: str, variants: Sequence[Variant], holdout_percent: int) -> str:
    """The holdout, or the name of the variant the customer receives."""
    point = bucket(broadcast_id, customer_id)
    holdout = holdout_percent / 100
    if point < holdout:
        return HOLDOUT
    point = (point - holdout) / (1 - holdout)  # spread again over the sent part
    total, edge = sum(v.share for v in variants), 0.0
    for variant in variants:
        edge += variant.share / total
        if point < edge:
            return variant.name
    return variants[-1].name


@dataclass(frozen=True, slots=True)
class Member:
    """A segment member as the policy sees them (the dispatcher builds the same :class:`Contact`)."""

    customer_id: str
    contact: Contact
    history: History


@dataclass(frozen=True, slots=True)
class Placed:
    customer_id: str
    group: str
    """A variant's name, :data:`HOLDOUT` or :data:`EXCLUDED`."""
    reason: str | None = None
    """Why the policy excluded them (``unsubscribed``, ``no_consent``, ``frequency_cap_1_per_1d``…)."""
    deferred: bool = False
    """Allowed, but in their quiet hours at that time: it goes when they end."""


@dataclass(slots=True)
class Audience:
    """Who the broadcast reaches: placed members, and the figures the console shows."""

    placed: list[Placed] = field(default_factory=list)
    members: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    """Members the policy refuses, by reason."""
    groups: Counter[str] = field(default_factory=Counter)
    """Members allowed, by variant and :data:`HOLDOUT`."""
    deferred: int = 0

    @property
    def to_send(self) -> int:
        """The messages that will go out: allowed members not held out."""
        return sum(n for group, n in self.groups.items() if group != HOLDOUT)


def place(
    broadcast_id: str,
    members: Iterable[Member],
    variants: Sequence[Variant],
    holdout_percent: int,
    at: datetime,
    policy: PolicySettings,
) -> Audience:
    """Judge each member with the contact policy of a marketing email at ``at`` (no rule, so no
    cooldown), then place the allowed ones in the holdout or a variant, in the order given."""
    audience = Audience()
    for member in members:
        audience.members += 1
        verdict = decide(member.contact, member.history, "marketing", None, at, policy)
        if verdict.outcome == "suppress":
            audience.excluded[verdict.reason] += 1
            audience.placed.append(Placed(member.customer_id, EXCLUDED, verdict.reason))
            continue
        group = group_of(broadcast_id, member.customer_id, variants, holdout_percent)
        deferred = verdict.outcome == "defer" and group != HOLDOUT
        audience.groups[group] += 1
        audience.deferred += deferred
        audience.placed.append(Placed(member.customer_id, group, deferred=deferred))
    return audience


def due_times(start: datetime, count: int, per_minute: int) -> list[datetime]:
    """When each of ``count`` messages is due: ``per_minute`` of them in each minute from ``start``."""
    return [start + timedelta(minutes=i // per_minute) for i in range(count)]
