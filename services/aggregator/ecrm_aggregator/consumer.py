"""The aggregator's default Kafka shell: the services' consumer runtime handing batches to the writer.

faust-streaming spends about 90 µs of Python per message on its own machinery (a task, a
queue and a flow-control wait per message): with an agent that does nothing, one faust
process reads about 10.7k events/s on the reference machine, where ``consume()`` batches
deliver several hundred thousand. So the events topic is read in batches by
:class:`ecrm_schemas.consumer_runtime.StreamRuntime` (batching, commits, rebalances, the
timer, garbage collection between batches and the fatal-error policy are described there),
and faust remains available as ``AGGREGATOR_ENGINE=faust`` (:mod:`.worker`), with the same
:class:`~ecrm_aggregator.batch_writer.BatchWriter` and the same guarantees:

* it reads the events topic and the stitched topic (events forwarded to the partition of the
  user they belong to), and the range assignor gives it the same partition numbers of both;
* at least once: a batch's offsets are committed, synchronously, only after
  :meth:`BatchWriter.process` returned; the writes are idempotent, so a batch delivered
  again after a crash or a rebalance is stored once;
* a batch is processed when it holds ``AGGREGATOR_BATCH_SIZE`` records or
  ``AGGREGATOR_BATCH_WAIT_S`` after its first record;
* on a rebalance, records buffered for revoked partitions are dropped unprocessed (their
  next owner reads them again from the committed offset), and the writer forgets what it
  knew of the assignment's partitions (:class:`AssignmentStrategy` is built per assignment);
* the timer (stale traits, segment windows, consumer lag) runs between batches on the same
  thread, for the partitions assigned at that moment;
* the cyclic garbage collector runs between batches, not during them: a batch allocates
  hundreds of thousands of short-lived, acyclic objects, which automatic collections walked
  again and again (decoding alone: 19 µs/event with collections during the batch, 12 without);
* a batch that cannot be written, or a topic that is mostly invalid, ends the process with
  nothing more committed (exit codes :data:`EXIT_BATCH_FAILED`, :data:`EXIT_TOO_MANY_INVALID`).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Mapping
from typing import Any

import structlog
from confluent_kafka import Message

from ecrm_aggregator import metrics
from ecrm_aggregator.batch_writer import BatchWriter, TooManyInvalid
from ecrm_aggregator.decode import SourceRecord, parse_origin
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.consumer_runtime import (
    EXIT_BATCH_FAILED,
    EXIT_TOO_MANY_INVALID,
    BatchFailed,
    StreamRuntime,
    Where,
    exit_unacked,
)
from ecrm_schemas.own_events import origin_of_headers
from ecrm_schemas.topics import EVENTS, EVENTS_STITCHED, ORIGIN_HEADER

__all__ = ["EXIT_BATCH_FAILED", "EXIT_TOO_MANY_INVALID", "BatchConsumer", "consumer_config", "exit_unacked"]
log = structlog.get_logger()


def consumer_config(settings: AggregatorSettings) -> dict[str, Any]:
    # A fetch that finds nothing new waits at most this long: the latency floor when caught up.
    return settings.kafka_consumer_config(settings.aggregator_group_id, **{"fetch.wait.max.ms": 50})


def _record(message: Message) -> SourceRecord:
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None  # set on every message without an error
    event_origin = origin_of_headers(message.headers())
    if message.topic() != EVENTS_STITCHED.name:
        return SourceRecord(partition, offset, message.key(), message.value(), event_origin=event_origin)
    headers = dict(message.headers() or [])
    origin = parse_origin(headers.get(ORIGIN_HEADER))
    # Without a readable origin the record cannot be deduplicated; it is dead-lettered as such.
    value = message.value() if origin else b""
    return SourceRecord(partition, offset, message.key(), value, origin or (-1, -1), event_origin)


class AssignmentStrategy:
    """The writer's view of one assignment: the events partitions held (the stitched ones have the same numbers)."""

    def __init__(self, writer: BatchWriter, partitions: frozenset[Where]) -> None:
        self.writer = writer
        self.partitions = sorted(p for t, p in partitions if t == EVENTS.name)

    def process(self, batch: list[SourceRecord]) -> None:
        self.writer.process(batch)

    def tick(self, lag: Mapping[Where, int]) -> None:
        for (topic, partition), behind in lag.items():
            if topic == EVENTS.name:
                metrics.CONSUMER_LAG.labels(str(partition)).set(behind)
        self.writer.tick(self.partitions)

    def close(self) -> None:
        self.writer.partitions_revoked(self.partitions)
        for partition in self.partitions:
            with contextlib.suppress(KeyError):  # no lag measured yet
                metrics.CONSUMER_LAG.remove(str(partition))


class BatchConsumer:
    def __init__(self, settings: AggregatorSettings, writer: BatchWriter) -> None:
        self.writer = writer
        self.runtime: StreamRuntime[SourceRecord] = StreamRuntime(
            consumer_config(settings), [EVENTS.name, EVENTS_STITCHED.name], self, _record,
            max_batch_size=settings.aggregator_batch_size, max_batch_wait_s=settings.aggregator_batch_wait_s,
            tick_interval_s=settings.aggregator_timer_interval_s, collect_garbage=True,
        )  # fmt: skip

    def create(self, partitions: frozenset[Where]) -> AssignmentStrategy:
        return AssignmentStrategy(self.writer, partitions)

    def stop(self, *_args: Any) -> None:
        """Finish the current step and leave (signal handler); a batch in progress is not committed."""
        self.runtime.stop()
        self.writer.stop()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        try:
            self.runtime.run()
        except BatchFailed as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, TooManyInvalid):
                exit_unacked(EXIT_TOO_MANY_INVALID, "too_many_invalid_events", cause)
            exit_unacked(EXIT_BATCH_FAILED, "batch_failed", cause)
