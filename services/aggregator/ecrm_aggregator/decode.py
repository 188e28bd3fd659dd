"""Step 1: Kafka records in, positioned events and dead letters out (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import Event
from ecrm_schemas.own_events import EventOrigin, own_event_headers
from ecrm_schemas.topics import EVENTS, EVENTS_STITCHED, ORIGIN_HEADER
from ecrm_schemas.validation import FieldError, InvalidEvent, validate_event


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A record as read from Kafka: from the events topic, or forwarded on the stitched topic
    (``origin``: its position on the events topic, from the ``ecrm-origin`` header).

    ``event_origin``: who produced the event, from the producer header only
    (:func:`ecrm_schemas.own_events.origin_of_headers`)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    origin: tuple[int, int] | None = None
    event_origin: EventOrigin = EventOrigin.CLIENT


@dataclass(frozen=True, slots=True)
class PositionedEvent:
    """A valid event and its position on the events topic.

    ``forwarded``: it came over the stitched topic; another worker stored it, this one folds it.
    ``event_origin``: the record's, carried on to the change's trigger and the stitched topic.
    """

    event: Event
    partition: int
    offset: int
    forwarded: bool = False
    event_origin: EventOrigin = EventOrigin.CLIENT


def parse_origin(header: bytes | str | None) -> tuple[int, int] | None:
    """``b"3:1200"`` → ``(3, 1200)``; None when missing or malformed."""
    if header is None:
        return None
    text = header.decode(errors="replace") if isinstance(header, bytes) else header
    partition, _, offset = text.partition(":")
    try:
        return int(partition), int(offset)
    except ValueError:
        return None


def origin_header(positioned: PositionedEvent) -> bytes:
    return f"{positioned.partition}:{positioned.offset}".encode()


def forward_headers(positioned: PositionedEvent) -> list[tuple[str, str | bytes | None]]:
    """The headers of an event forwarded on the stitched topic: its position on the events
    topic, and the producer's mark when the interaction service produced it."""
    headers: list[tuple[str, str | bytes | None]] = [(ORIGIN_HEADER, origin_header(positioned))]
    if positioned.event_origin is EventOrigin.INTERACTION:
        headers += own_event_headers()
    return headers


@dataclass(slots=True)
class Decoded:
    events: list[PositionedEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    suppressed: int = 0
    """Events of erased identities, dropped (see :func:`ecrm_aggregator.pipeline.plan_batch`)."""


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
        if record.origin is None:
            decoded.events.append(PositionedEvent(event, record.partition, record.offset, False, record.event_origin))
        else:
            decoded.events.append(PositionedEvent(event, *record.origin, True, record.event_origin))
    return decoded


def _dead_letter(record: SourceRecord, reason: str, errors: list[FieldError]) -> DeadLetter:
    return DeadLetter.build(
        topic=EVENTS.name if record.origin is None else EVENTS_STITCHED.name,
        source="aggregator",
        reason=reason,  # type: ignore[arg-type]
        errors=errors,
        payload=record.value or b"",
        partition=record.partition,
        offset=record.offset,
    )
