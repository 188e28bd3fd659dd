"""The collector's pure step: a request's decoded events in, Kafka records out.

No I/O here: the HTTP shell decodes the body and produces what :func:`plan_ingest` returns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic_core import PydanticSerializationError

from ecrm_collector.stamping import stamp
from ecrm_schemas.backfill import marked_backfill, without_backfill
from ecrm_schemas.catalog import CATALOG
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import Event, TrackEvent, encode_event
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
    server_events_allowed: bool = True,
    request_bytes: int | None = None,
    suppressions: SuppressionList | None = None,
    backfill: bool = False,
) -> IngestPlan:
    """Stamp and validate each event; valid ones become event records, invalid ones DLQ records.

    ``batch_defaults`` (a batch's top-level ``context``, ``integrations`` and ``sentAt``)
    fill what an event does not set itself. Without ``server_events_allowed`` (a browser
    source), back-end events such as orders and refunds are rejected. ``request_bytes``, the
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
        try:
            if measure and (size := len(orjson.dumps(raw))) > max_event_bytes:
                raise InvalidEvent([_event_size_error(max_event_bytes, size)])
            if isinstance(raw, dict) and batch_defaults:
                raw = _apply_defaults(raw, batch_defaults)
            if isinstance(raw, dict):
                raw = marked_backfill(raw) if backfill else without_backfill(raw)
            candidate = stamp(raw, received_at, event_type) if isinstance(raw, dict) else raw
            event = validate_event(candidate)
            if not server_events_allowed and _server_only(event):
                raise InvalidEvent([FieldError("event", "server_only", "only server sources may send this event")])
            value = encode_event(event)
        except (orjson.JSONEncodeError, PydanticSerializationError, RecursionError):
            # JSON nested deeper than the serialisers go (orjson stops at 255 levels).
            errors = [FieldError("$", "too_deep", "the event is nested too deeply to store")]
            plan.rejected.append(Rejection(index, errors, _dead_letter(raw, source, errors)))
            continue
        except InvalidEvent as invalid:
            plan.rejected.append(Rejection(index, invalid.errors, _dead_letter(raw, source, invalid.errors)))
            continue
        plan.accepted.append(Record(event.customer_key.encode(), value))
    return plan


def _dead_letter(raw: Any, source: str, errors: list[FieldError]) -> Record:
    letter = DeadLetter.build(
        topic=EVENTS.name, source=source, reason="invalid_event", errors=errors, payload=_dump_raw(raw)
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


def _server_only(event: Event) -> bool:
    entry = CATALOG.get(event.event) if isinstance(event, TrackEvent) else None
    return entry is not None and entry.server_only


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
