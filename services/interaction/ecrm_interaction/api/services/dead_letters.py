"""The dead-letter topics as people inspect them: their most recent entries, read by a bounded
consumer that assigns partitions itself (no group, nothing committed), so looking moves no
replay's position and costs one short read whatever the topic's size.

What is shown of an entry is redacted (:func:`preview`): a dead letter holds the event as it
was sent, personal data included, and the console shows only its shape.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.settings import consumer_config
from ecrm_schemas.topics import ALL_TOPICS, TOPICS_BY_NAME

DEAD_LETTER_TOPICS: tuple[str, ...] = tuple(t.dead_letter for t in ALL_TOPICS if t.dead_letter)
"""Every dead-letter topic, in the order of the topics they serve."""
KEPT_AS_SENT = frozenset({"type", "event", "messageId"})
"""Envelope fields whose values are no one's personal data: shown as sent."""


TAIL_S = 0.15
"""How long a read waits, past the reported ends, for records the broker has not counted yet."""


QUICK: dict[str, Any] = {"fetch.wait.max.ms": 10}
"""A page is waiting: the broker answers a fetch at once rather than waiting for more records."""


class DeadLettersUnavailable(Exception):
    """Kafka could not be read in time."""


@dataclass(frozen=True, slots=True)
class Entry:
    topic: str
    partition: int
    offset: int
    letter: DeadLetter | None
    """``None`` when the record is not a dead letter at all."""


@dataclass
class Window:
    """The most recent entries of every dead-letter topic, newest first."""

    entries: list[Entry] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)
    """How many records each topic holds (all of them, not only those read)."""
    complete: bool = True
    """False when the read stopped at its deadline before reaching every partition's end."""

    def by_reason(self) -> list[tuple[str, str, int]]:
        """(topic, reason, entries) over the entries read, most first."""
        counted = Counter((e.topic, e.letter.reason if e.letter else "not_a_dead_letter") for e in self.entries)
        return [(topic, reason, n) for (topic, reason), n in counted.most_common()]


def _decode(value: bytes | None) -> DeadLetter | None:
    try:
        return DeadLetter.model_validate_json(value or b"")
    except ValidationError:
        return None


def read_recent(config: dict[str, Any], per_partition: int = 200, timeout_s: float = 5.0) -> Window:
    """The last ``per_partition`` entries of each partition of every dead-letter topic."""
    window = Window()
    consumer = Consumer(consumer_config(config) | QUICK)
    try:
        marks: dict[tuple[str, int], tuple[int, int]] = {}
        starts: list[TopicPartition] = []
        for topic in DEAD_LETTER_TOPICS:
            for partition in range(TOPICS_BY_NAME[topic].partitions):
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
                except KafkaException as exc:
                    raise DeadLettersUnavailable(str(exc)) from exc
                marks[(topic, partition)] = (low, high)
                if high > low:
                    starts.append(TopicPartition(topic, partition, max(low, high - per_partition)))
        ends = {(tp.topic, tp.partition): marks[(tp.topic, tp.partition)][1] for tp in starts}
        window.entries, window.complete = _consume(consumer, starts, ends, timeout_s)
    finally:
        consumer.close()
    last = {(e.topic, e.partition): e.offset + 1 for e in sorted(window.entries, key=lambda e: e.offset)}
    for (topic, partition), (low, high) in marks.items():
        held = max(high, last.get((topic, partition), 0)) - low
        window.held[topic] = window.held.get(topic, 0) + max(0, held)
    window.entries.sort(key=lambda e: (e.letter.failed_at.timestamp() if e.letter else 0.0, e.offset), reverse=True)
    return window


def read_at(config: dict[str, Any], positions: list[tuple[str, int, int]], timeout_s: float = 5.0) -> list[Entry]:
    """The entries at these (topic, partition, offset) positions (those still held)."""
    wanted = set(positions)
    consumer = Consumer(consumer_config(config) | QUICK)
    try:
        # One read from the lowest wanted offset of each partition to its highest.
        lowest: dict[tuple[str, int], int] = {}
        ends: dict[tuple[str, int], int] = {}
        for topic, partition, offset in wanted:
            lowest[(topic, partition)] = min(offset, lowest.get((topic, partition), offset))
            ends[(topic, partition)] = max(offset + 1, ends.get((topic, partition), 0))
        starts = [TopicPartition(t, p, o) for (t, p), o in lowest.items()]
        entries, _complete = _consume(consumer, starts, ends, timeout_s)
    finally:
        consumer.close()
    return [e for e in entries if (e.topic, e.partition, e.offset) in wanted]


def _consume(
    consumer: Consumer, starts: list[TopicPartition], ends: dict[tuple[str, int], int], timeout_s: float
) -> tuple[list[Entry], bool]:
    """Read from ``starts`` until every partition reached its reported end, then once more for
    ``TAIL_S``: some brokers (tansu) report a high watermark behind their last record for a while."""
    if not starts:
        return [], True
    entries: list[Entry] = []
    left = dict(ends)
    consumer.assign(starts)
    deadline = time.monotonic() + timeout_s
    tail_read = False
    while time.monotonic() < deadline and not tail_read:
        if not left:
            tail_read = True
        for message in consumer.consume(500, TAIL_S if tail_read else 0.2):
            if message.error() is not None:
                continue
            topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
            entries.append(Entry(topic, partition, offset, _decode(message.value())))
            if offset + 1 >= left.get((topic, partition), offset + 2):
                del left[(topic, partition)]
    return entries, not left


def preview(letter: DeadLetter, limit: int = 400) -> str:
    """The entry's payload with every value but the envelope's type, event name and message id
    replaced by its kind (``<text>``, ``<number>``…): the shape that failed, no one's data."""
    try:
        raw = orjson.loads(letter.raw_payload())
    except orjson.JSONDecodeError:
        return f"<{len(letter.raw_payload())} bytes that are not JSON>"
    text = orjson.dumps(_redact(raw)).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redact(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value[:5]] + (["…"] if len(value) > 5 else [])
    if key in KEPT_AS_SENT and isinstance(value, str) and len(value) <= 80:
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return "<number>"
    return "<text>"
