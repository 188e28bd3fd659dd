"""Replaying dead letters of ``ecrm.events`` after a fix: the pure step.

An entry is validated again by the same step that rejected it: the collector's ingest for
what the collector refused (stamped with the time it was first received), the shared event
validation for what the aggregator refused (already stamped). What passes now becomes the
record it would have been; what still fails stays where it is. An entry refused because a
browser source sent a server-only event is never replayed: replaying it would let a public
key do what it may not. Nor is an entry of an erased (suppressed) identity.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import orjson

from ecrm_collector.ingest import Record, plan_ingest
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import encode_event
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.validation import InvalidEvent, validate_event

NEVER_REPLAYED = frozenset({"server_only"})
"""Rules whose rejections stand whatever is fixed later."""


@dataclass
class ReplayPlan:
    records: list[Record] = field(default_factory=list)
    """What goes to ``ecrm.events``, with the message ids the events first had."""
    still_invalid: list[tuple[DeadLetter, list[str]]] = field(default_factory=list)
    """Entries that fail again, with the ``field: rule`` pairs that fail now."""
    refused: list[DeadLetter] = field(default_factory=list)
    """Entries never replayed (see :data:`NEVER_REPLAYED`)."""
    other_topic: list[DeadLetter] = field(default_factory=list)
    """Entries meant for another topic than ``ecrm.events``."""
    suppressed: int = 0
    """Entries of erased identities: never replayed."""


def payload_bytes(letter: DeadLetter) -> bytes:
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode()


def plan_replay(
    letters: list[DeadLetter], max_event_bytes: int, suppressions: SuppressionList | None = None
) -> ReplayPlan:
    plan = ReplayPlan()
    for letter in letters:
        if letter.topic != EVENTS.name:
            plan.other_topic.append(letter)
            continue
        if any(error.rule in NEVER_REPLAYED for error in letter.errors):
            plan.refused.append(letter)
            continue
        try:
            raw = orjson.loads(payload_bytes(letter))
        except orjson.JSONDecodeError:
            plan.still_invalid.append((letter, ["body: invalid_json"]))
            continue
        if suppressions is not None and suppressions.matches_raw(raw):
            plan.suppressed += 1
            continue
        if letter.source.startswith("collector"):
            ingest = plan_ingest(
                [raw], received_at=letter.failed_at, source=letter.source, max_event_bytes=max_event_bytes
            )
            plan.records.extend(ingest.accepted)
            for rejection in ingest.rejected:
                plan.still_invalid.append((letter, [f"{e.field}: {e.rule}" for e in rejection.errors]))
            continue
        try:
            event = validate_event(raw)
        except InvalidEvent as invalid:
            plan.still_invalid.append((letter, [f"{e.field}: {e.rule}" for e in invalid.errors]))
            continue
        plan.records.append(Record(event.customer_key.encode(), encode_event(event)))
    return plan
