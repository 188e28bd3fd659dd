"""Replaying dead letters of ``ecrm.events`` after a fix: the pure step.

An entry is validated again by the same step that rejected it: the collector's ingest for
what the collector refused (stamped with the time it was first received), the shared event
validation for what the aggregator refused (already stamped). What passes now becomes the
record it would have been; what still fails stays where it is. An entry refused because a
browser key sent a server-only or contact-state event is never replayed: replaying it would
let a public key do what it may not. Each entry is replayed under its sender's rules (a
browser key's entry that failed for another reason is refused for those events too). Nor is
an entry of an erased (suppressed) identity replayed.

A replayed event is the event first received: the type its route implied and the messageId
the collector gave it are restored from the entry, so replaying twice folds it once.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from ecrm_collector.ingest import Record, plan_ingest
from ecrm_schemas.dead_letter import DeadLetter, SenderKind
from ecrm_schemas.events import encode_event
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.validation import InvalidEvent, validate_event

NEVER_REPLAYED = frozenset({"server_only", "contact_state"})
"""Rules whose rejections stand whatever is fixed later."""
VERIFIED_ROUTES = ("collector:email-tracking", "collector:email-webhook:")
"""The collector's own routes (signed links and webhooks), for entries that predate ``sender_kind``."""
_LEGACY_IDS = uuid.UUID("6f1d2c1e-3b0a-4a53-9e0c-6c5d0c3f9a11")


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
                [_as_first_received(raw, letter)],
                received_at=letter.failed_at,
                source=letter.source,
                max_event_bytes=max_event_bytes,
                event_type=letter.event_type,
                sender_kind=sender_kind(letter),
            )
            plan.records.extend(ingest.accepted)
            for rejection in ingest.rejected:
                if any(error.rule in NEVER_REPLAYED for error in rejection.errors):
                    plan.refused.append(letter)
                else:
                    plan.still_invalid.append((letter, [f"{e.field}: {e.rule}" for e in rejection.errors]))
            continue
        try:
            event = validate_event(raw)
        except InvalidEvent as invalid:
            plan.still_invalid.append((letter, [f"{e.field}: {e.rule}" for e in invalid.errors]))
            continue
        plan.records.append(Record(event.customer_key.encode(), encode_event(event)))
    return plan


def sender_kind(letter: DeadLetter) -> SenderKind:
    """Whose rules a collector entry is replayed under. An entry written before the kind was
    recorded counts as a browser key's unless it came from a verified route: a server key's
    back-end or contact-state event of that age is refused rather than risking a public key's."""
    if letter.sender_kind is not None:
        return letter.sender_kind
    return "verified" if letter.source.startswith(VERIFIED_ROUTES) else "browser"


def _as_first_received(raw: Any, letter: DeadLetter) -> Any:
    """The payload with the messageId it was given when first received (an entry that predates
    ``message_id`` gets one derived from the entry itself, the same on every run)."""
    if not isinstance(raw, dict) or raw.get("messageId"):
        return raw
    message_id = letter.message_id or str(
        uuid.uuid5(_LEGACY_IDS, f"{letter.source}|{letter.failed_at.isoformat()}|{letter.payload}")
    )
    return raw | {"messageId": message_id}
