"""The collector's pure step: a request's decoded events in, Kafka records out.

No I/O here: the HTTP shell decodes the body and produces what :func:`plan_ingest` returns.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic_core import PydanticSerializationError

from ecrm_collector.stamping import stamp
from ecrm_schemas.backfill import marked_backfill, without_backfill
from ecrm_schemas.catalog import browser_refusal
from ecrm_schemas.dead_letter import DeadLetter, SenderKind
from ecrm_schemas.events import RESERVED_MESSAGE_ID_PREFIXES, encode_event
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.validation import FieldError, InvalidEvent, validate_event


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record to produce."""

    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that failed validation: its index in the request and why."""

    index: int
    errors: list[FieldError]
    dead_letter: Record


@dataclass(slots=True)
class IngestPlan:
    accepted: list[Record] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    suppressed: int = 0
    """Events of erased identities: dropped, neither stored nor dead-lettered."""


def _event_size_error(limit: int, size: int) -> FieldError:
    return FieldError("$", "too_large", f"event is {size} bytes; the limit is {limit}")


def plan_ingest(
    raw_events: Sequence[Any],
    *,
    received_at: datetime,
    source: str,
    max_event_bytes: int,
    event_type: str | None = None,
    batch_defaults: dict[str, Any] | None = None,
    sender_kind: SenderKind = "server",
    request_bytes: int | None = None,
    suppressions: SuppressionList | None = None,
    backfill: bool = False,
) -> IngestPlan:
    """Stamp and validate each event; valid ones become event records, invalid ones DLQ records.

    ``batch_defaults`` (a batch's top-level ``context``, ``integrations`` and ``sentAt``)
    fill what an event does not set itself. From a ``browser`` sender (a public key),
    back-end events such as orders and refunds (rule ``server_only``) and events that change
    contact state (rule ``contact_state``: unsubscribes, bounces, complaints, consent) are
    rejected, by name, before any other check. ``request_bytes``, the
    size of the whole request, spares measuring each event when the request itself is
    within the per-event limit. An event naming an identity on ``suppressions`` (erased) is
    dropped before anything else: not even its dead letter may hold it. ``backfill`` (the
    import route) marks every event as imported history; without it the mark is removed
    (:mod:`ecrm_schemas.backfill`).
    """
    plan = IngestPlan()
    measure = request_bytes is None or request_bytes > max_event_bytes
    for index, raw in enumerate(raw_events):
        if suppressions is not None and suppressions.matches_raw(raw):
            plan.suppressed += 1
            continue
        candidate: Any = raw
        try:
            if measure and (size := len(orjson.dumps(raw))) > max_event_bytes:
                raise InvalidEvent([_event_size_error(max_event_bytes, size)])
            if isinstance(raw, dict) and batch_defaults:
                raw = _apply_defaults(raw, batch_defaults)
            if isinstance(raw, dict):
                raw = marked_backfill(raw) if backfill else without_backfill(raw)
            candidate = stamp(raw, received_at, event_type) if isinstance(raw, dict) else raw
            if sender_kind == "browser" and (refusal := _browser_refusal(candidate)) is not None:
                raise InvalidEvent([refusal])
            event = validate_event(candidate)
            value = encode_event(event)
        except (orjson.JSONEncodeError, PydanticSerializationError, RecursionError):
            # JSON nested deeper than the serialisers go (orjson stops at 255 levels).
            errors = [FieldError("$", "too_deep", "the event is nested too deeply to store")]
            letter = _dead_letter(raw, candidate, source, errors, sender_kind, event_type)
            plan.rejected.append(Rejection(index, errors, letter))
            continue
        except InvalidEvent as invalid:
            letter = _dead_letter(raw, candidate, source, invalid.errors, sender_kind, event_type)
            plan.rejected.append(Rejection(index, invalid.errors, letter))
            continue
        plan.accepted.append(Record(event.customer_key.encode(), value))
    return plan


def _dead_letter(
    raw: Any,
    stamped: Any,
    source: str,
    errors: list[FieldError],
    sender_kind: SenderKind,
    event_type: str | None,
) -> Record:
    """The raw event's dead letter, with what the server set that the payload lacks: the type
    the route implied and the messageId it was given, so that a replay is the same event."""
    message_id = None
    if isinstance(raw, dict) and not raw.get("messageId"):
        given = stamped.get("messageId") if isinstance(stamped, dict) else None
        message_id = given if isinstance(given, str) else str(uuid.uuid4())
    letter = DeadLetter.build(
        topic=EVENTS.name,
        source=source,
        reason="invalid_event",
        errors=errors,
        payload=_dump_raw(raw),
        sender_kind=sender_kind,
        event_type=event_type if isinstance(raw, dict) else None,
        message_id=message_id,
    )
    return Record(_key_of(raw), letter.model_dump_json().encode())


def _dump_raw(raw: Any) -> bytes:
    """The event as received, for its dead letter, however deep it is nested."""
    try:
        return orjson.dumps(raw)
    except orjson.JSONEncodeError:  # deeper than orjson writes; the parser let up to 1,024 levels in
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 5000))
        try:
            return json.dumps(raw, ensure_ascii=False).encode()
        finally:
            sys.setrecursionlimit(limit)


def _browser_refusal(candidate: Any) -> FieldError | None:
    """Why a browser key may not send this event (by its name or its messageId), or None."""
    if not isinstance(candidate, dict):
        return None
    message_id = candidate.get("messageId")
    if isinstance(message_id, str) and message_id.strip().startswith(RESERVED_MESSAGE_ID_PREFIXES):
        reserved = ", ".join(f"{prefix!r}" for prefix in RESERVED_MESSAGE_ID_PREFIXES)
        return FieldError(
            "messageId", "reserved_prefix", f"message ids starting with {reserved} are the pipeline's own"
        )
    if candidate.get("type") != "track":
        return None
    name = candidate.get("event")
    refusal = browser_refusal(name) if isinstance(name, str) else None
    return FieldError("event", *refusal) if refusal is not None else None


def _apply_defaults(raw: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    merged = dict(raw)
    for name in ("sentAt", "integrations"):
        if name in defaults and name not in merged:
            merged[name] = defaults[name]
    if isinstance(defaults.get("context"), dict):
        own_context = merged.get("context")
        own = own_context if isinstance(own_context, dict) else {}
        merged["context"] = {**defaults["context"], **own}
    return merged


def _key_of(raw: Any) -> bytes | None:
    if isinstance(raw, dict):
        for name in ("userId", "anonymousId"):
            if isinstance(raw.get(name), str) and raw[name]:
                return raw[name].encode()
    return None
