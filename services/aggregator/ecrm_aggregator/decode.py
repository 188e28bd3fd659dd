"""Step 1: Kafka records in, positioned events and dead letters out (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import Event
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.validation import FieldError, InvalidEvent, validate_event


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A record as read from Kafka."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class PositionedEvent:
    """A valid event and where it was read."""

    event: Event
    partition: int
    offset: int


@dataclass(slots=True)
class Decoded:
    events: list[PositionedEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def decode_records(records: list[SourceRecord]) -> Decoded:
    """Validate every record again (Kafka is not trusted); invalid ones become dead letters."""
    decoded = Decoded()
    for record in records:
        payload = record.value or b""
        try:
            raw = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            decoded.dead_letters.append(
                _dead_letter(record, "undecodable", [FieldError("$", "json_invalid", str(exc))])
            )
            continue
        try:
            event = validate_event(raw)
        except InvalidEvent as invalid:
            decoded.dead_letters.append(_dead_letter(record, "invalid_event", invalid.errors))
            continue
        decoded.events.append(PositionedEvent(event, record.partition, record.offset))
    return decoded


def _dead_letter(record: SourceRecord, reason: str, errors: list[FieldError]) -> DeadLetter:
    return DeadLetter.build(
        topic=EVENTS.name,
        source="aggregator",
        reason=reason,  # type: ignore[arg-type]
        errors=errors,
        payload=record.value or b"",
        partition=record.partition,
        offset=record.offset,
    )
