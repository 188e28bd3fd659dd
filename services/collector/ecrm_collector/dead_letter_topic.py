"""Reading ``ecrm.events.dlq`` and replaying it: the Kafka shell around :mod:`.dead_letters`.

Replays go through the consumer group ``ecrm-dlq-replay``: an entry is replayed once, its
offset committed after its records are acknowledged, so running a replay again replays only
what was added since. An entry that is still invalid is not handled: the group's position
stops at the first one of each partition, so it is tried again by the next replay (after the
next fix), unless the operator gives up on it (``discard_invalid``). Replayed events keep
their message ids, so what a later run sends again (the entries after a still-invalid one,
or a replay cut off between the acknowledgment and the commit) is folded once (the
aggregator deduplicates them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from pydantic import ValidationError

from ecrm_collector.dead_letters import ReplayPlan, plan_replay
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.settings import consumer_config
from ecrm_schemas.suppressions import follow_suppressions
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ

REPLAY_GROUP = "ecrm-dlq-replay"


@dataclass(frozen=True)
class Entry:
    partition: int
    offset: int
    letter: DeadLetter | None
    """``None`` when the record is not a dead letter at all (it is listed, never replayed)."""


def _end_offsets(consumer: Consumer, timeout_s: float) -> dict[int, tuple[int, int]]:
    return {
        p: consumer.get_watermark_offsets(TopicPartition(EVENTS_DLQ.name, p), timeout=timeout_s)
        for p in range(EVENTS_DLQ.partitions)
    }


def read(
    config: dict[str, Any], *, from_group: bool = False, timeout_s: float = 10.0, idle_s: float = 1.0
) -> Iterator[tuple[Entry, Message]]:
    """Every entry of the dead-letter topic (or, ``from_group``, those the replay group has not
    committed yet), until the topic has been quiet for ``idle_s`` after its reported end.

    The end is not taken from the watermarks alone: some brokers (tansu) report a high
    watermark behind their last record for a while.
    """
    consumer = Consumer(consumer_config(config, REPLAY_GROUP))
    try:
        marks = _end_offsets(consumer, timeout_s)
        partitions = [TopicPartition(EVENTS_DLQ.name, p, OFFSET_BEGINNING) for p in marks]
        if from_group:
            committed = consumer.committed(partitions, timeout=timeout_s)
            partitions = [TopicPartition(EVENTS_DLQ.name, tp.partition, _start(tp, marks)) for tp in committed]
        behind = {tp.partition for tp in partitions if _start(tp, marks) < marks[tp.partition][1]}
        consumer.assign(partitions)
        deadline = time.monotonic() + timeout_s
        while True:
            messages = consumer.consume(500, idle_s)
            if not messages:
                if not behind:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{EVENTS_DLQ.name} did not reach its reported end within {timeout_s} s")
                continue
            for message in messages:
                if message.error() is not None:
                    continue
                partition, offset = message.partition() or 0, message.offset() or 0
                if offset + 1 >= marks[partition][1]:
                    behind.discard(partition)
                try:
                    letter: DeadLetter | None = DeadLetter.model_validate_json(message.value() or b"")
                except ValidationError:
                    letter = None
                yield Entry(partition, offset, letter), message
    finally:
        consumer.close()


def read_at(config: dict[str, Any], positions: list[tuple[int, int]], timeout_s: float = 5.0) -> list[Entry]:
    """The entries at these (partition, offset) positions of the dead-letter topic (those it
    still holds), read without a group: reading them moves no replay's position."""
    wanted = set(positions)
    if not wanted:
        return []
    lowest: dict[int, int] = {}
    ends: dict[int, int] = {}
    for partition, offset in wanted:
        lowest[partition] = min(offset, lowest.get(partition, offset))
        ends[partition] = max(offset + 1, ends.get(partition, 0))
    consumer = Consumer(consumer_config(config))
    found: list[Entry] = []
    try:
        marks = _end_offsets(consumer, timeout_s)
        ends = {p: end for p, end in ends.items() if p in marks}
        consumer.assign([TopicPartition(EVENTS_DLQ.name, p, max(lowest[p], marks[p][0])) for p in ends])
        reached: dict[int, int] = {p: max(lowest[p], marks[p][0]) for p in ends}
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            messages = consumer.consume(500, 0.5)
            # Past the reported end and quiet: what is still wanted is not held (the end is
            # waited for a little longer than reported: tansu's lags behind its last record).
            if not messages and all(reached[p] >= marks[p][1] for p in ends):
                break
            for message in messages:
                if message.error() is not None:
                    continue
                partition, offset = message.partition() or 0, message.offset() or 0
                reached[partition] = max(reached.get(partition, 0), offset + 1)
                if partition not in ends or offset >= ends[partition]:
                    continue
                if (partition, offset) in wanted:
                    try:
                        letter: DeadLetter | None = DeadLetter.model_validate_json(message.value() or b"")
                    except ValidationError:
                        letter = None
                    found.append(Entry(partition, offset, letter))
                if offset + 1 >= ends[partition]:
                    del ends[partition]
    finally:
        consumer.close()
    return found


def _start(tp: TopicPartition, marks: dict[int, tuple[int, int]]) -> int:
    """Where a partition's reading starts: its committed offset, or its first record."""
    return marks[tp.partition][0] if tp.offset < 0 else tp.offset


def replay(
    config: dict[str, Any], max_event_bytes: int, *, apply: bool, discard_invalid: bool = False
) -> tuple[ReplayPlan, int]:
    """Plan (and with ``apply`` carry out) the replay of what the group has not replayed yet;
    returns the plan and how many entries it covered. Still-invalid entries stay pending
    unless ``discard_invalid``."""
    suppressions, follower = follow_suppressions(config)
    try:
        if not follower.caught_up.wait(30):
            raise RuntimeError("the suppression list could not be read: nothing is replayed")
    finally:
        follower.stop()
    entries = list(read(config, from_group=True))
    letters = [entry.letter for entry, _ in entries if entry.letter is not None]
    plan = plan_replay(letters, max_event_bytes, suppressions)
    if apply and entries:
        producer = ReliableProducer(config)
        for record in plan.records:
            producer.produce(EVENTS.name, value=record.value, key=record.key)
        producer.flush_or_raise(30)
        pending = [] if discard_invalid else [letter for letter, _ in plan.still_invalid]
        positions = handled_positions([(e.partition, e.offset, e.letter) for e, _ in entries], pending)
        consumer = Consumer(consumer_config(config, REPLAY_GROUP))
        try:
            consumer.commit(offsets=[TopicPartition(EVENTS_DLQ.name, p, o) for p, o in positions.items()],
                            asynchronous=False)  # fmt: skip
        finally:
            consumer.close()
    return plan, len(entries)


def handled_positions(entries: list[tuple[int, int, DeadLetter | None]], pending: list[DeadLetter]) -> dict[int, int]:
    """The offset to commit per partition: past every entry read, or at the first entry still
    ``pending`` (compared by identity: the plan's own letters), which the next replay reads again."""
    positions: dict[int, int] = {}
    stopped: set[int] = set()
    for partition, offset, letter in sorted(entries, key=lambda e: (e[0], e[1])):
        if partition in stopped:
            continue
        if letter is not None and any(letter is waiting for waiting in pending):
            positions[partition] = offset
            stopped.add(partition)
            continue
        positions[partition] = offset + 1
    return positions
