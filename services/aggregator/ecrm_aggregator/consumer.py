"""The aggregator's default Kafka shell: a confluent-kafka consumer handing batches to the writer.

faust-streaming spends about 90 µs of Python per message on its own machinery (a task, a
queue and a flow-control wait per message): with an agent that does nothing, one faust
process reads about 10.7k events/s on the reference machine, where this consumer's
``consume()`` delivers several hundred thousand. So the events topic is read here in
batches, and faust remains available as ``AGGREGATOR_ENGINE=faust`` (:mod:`.worker`), with
the same :class:`~ecrm_aggregator.batch_writer.BatchWriter` and the same guarantees:

* it reads the events topic and the stitched topic (events forwarded to the partition of the
  user they belong to), and the range assignor gives it the same partition numbers of both;
* at least once: a batch's offsets are committed, synchronously, only after
  :meth:`BatchWriter.process` returned; the writes are idempotent, so a batch delivered
  again after a crash or a rebalance is stored once;
* a batch is processed when it holds ``AGGREGATOR_BATCH_SIZE`` records or
  ``AGGREGATOR_BATCH_WAIT_S`` after its first record;
* on a rebalance, records buffered for revoked partitions are dropped unprocessed (their
  next owner reads them again from the committed offset), and the writer forgets what it
  knew of those partitions;
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
import gc
import logging
import os
import signal
import threading
import time
from typing import Any, NoReturn

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from ecrm_aggregator import metrics
from ecrm_aggregator.batch_writer import BatchWriter, TooManyInvalid
from ecrm_aggregator.decode import SourceRecord, parse_origin
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.own_events import origin_of_headers
from ecrm_schemas.topics import EVENTS, EVENTS_STITCHED, ORIGIN_HEADER

log = structlog.get_logger()
EXIT_TOO_MANY_INVALID = 70
EXIT_BATCH_FAILED = 75


def exit_unacked(code: int, reason: str, exc: BaseException) -> NoReturn:
    """Leave the process at once, committing nothing more."""
    log.critical(reason, error=str(exc), exit_code=code)
    logging.shutdown()
    os._exit(code)


def consumer_config(settings: AggregatorSettings) -> dict[str, Any]:
    session_ms = settings.kafka_session_timeout_ms
    return {
        **settings.kafka_client_config(),
        "group.id": settings.aggregator_group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(100, min(3000, session_ms // 10)),
        # The range assignor gives a worker the same partition numbers of every topic it reads
        # (co-partitioning), which the aggregator's topics rely on.
        "partition.assignment.strategy": "range",
        # A fetch that finds nothing new waits at most this long: the latency floor when caught up.
        "fetch.wait.max.ms": 50,
        "logger": logging.getLogger("ecrm.kafka"),
    }


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


class BatchConsumer:
    def __init__(self, settings: AggregatorSettings, writer: BatchWriter) -> None:
        self.writer = writer
        self.batch_size, self.batch_wait_s = settings.aggregator_batch_size, settings.aggregator_batch_wait_s
        self.timer_interval_s = settings.aggregator_timer_interval_s
        self._config = consumer_config(settings)
        self._buffer: list[SourceRecord] = []
        self._assigned: set[int] = set()
        self._stopping = threading.Event()

    def stop(self, *_args: Any) -> None:
        """Finish the current step and leave (signal handler); a batch in progress is not committed."""
        self._stopping.set()
        self.writer.stop()

    def run(self) -> None:
        gc.disable()  # collected explicitly between batches (see the module docstring)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        consumer = Consumer(self._config)
        consumer.subscribe([EVENTS.name, EVENTS_STITCHED.name], on_assign=self._on_assign,
                           on_revoke=self._on_revoke, on_lost=self._on_revoke)  # fmt: skip
        next_tick = time.monotonic() + self.timer_interval_s
        first_at: float | None = None
        """When the batch's oldest record was produced (wall clock, never later than its arrival)."""
        try:
            while not self._stopping.is_set():
                # An empty buffer polls briefly, so that a batch's clock starts when its first record arrives.
                wait = 0.05 if first_at is None else first_at + self.batch_wait_s - time.time()
                wanted = self.batch_size - len(self._buffer)
                for message in consumer.consume(num_messages=wanted, timeout=min(max(wait, 0.0), 1.0)):
                    error = message.error()
                    if error is None:
                        self._buffer.append(_record(message))
                        if first_at is None:
                            # Records that queued up while the previous batch was written have
                            # waited already: their batch closes on their age, not on a new wait.
                            _, produced_ms = message.timestamp()
                            first_at = min(time.time(), produced_ms / 1000) if produced_ms > 0 else time.time()
                    elif error.fatal():
                        raise KafkaException(error)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka_consume_error", error=str(error))
                if not self._buffer:
                    first_at = None
                full = len(self._buffer) >= self.batch_size
                if first_at is not None and (full or time.time() - first_at >= self.batch_wait_s):
                    self._process(consumer)
                    first_at = None
                    gc.collect(1)  # the batch's objects are gone: cheap
                if time.monotonic() >= next_tick:
                    self._tick(consumer)
                    next_tick = time.monotonic() + self.timer_interval_s
                    gc.collect()
        finally:
            consumer.close()

    def _process(self, consumer: Consumer) -> None:
        records, self._buffer = self._buffer, []
        try:
            self.writer.process(records)
        except TooManyInvalid as exc:
            exit_unacked(EXIT_TOO_MANY_INVALID, "too_many_invalid_events", exc)
        except Exception as exc:
            if self._stopping.is_set():
                return  # asked to stop mid-batch: uncommitted, delivered again
            exit_unacked(EXIT_BATCH_FAILED, "batch_failed", exc)
        offsets: dict[tuple[str, int], int] = {}
        for record in records:
            where = (EVENTS.name if record.origin is None else EVENTS_STITCHED.name, record.partition)
            offsets[where] = max(offsets.get(where, 0), record.offset + 1)
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions meanwhile: their next owner reads the
            # batch again and the idempotent writes store it once.
            log.warning("kafka_commit_failed", error=str(exc))

    def _tick(self, consumer: Consumer) -> None:
        partitions = sorted(self._assigned)
        try:
            self.writer.tick(partitions)
        except Exception as exc:  # the next tick tries again; batches go on meanwhile
            log.error("timer_failed", error=str(exc))
        for partition in partitions:
            tp = TopicPartition(EVENTS.name, partition)
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                [position] = consumer.position([tp])
            except KafkaException:
                continue
            if position.offset >= 0 and high >= 0:
                metrics.CONSUMER_LAG.labels(str(partition)).set(max(0, high - position.offset))

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {tp.partition for tp in partitions if tp.topic == EVENTS.name}
        log.info("partitions_assigned", partitions=sorted(self._assigned))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions if tp.topic == EVENTS.name}
        revoked_stitched = {tp.partition for tp in partitions if tp.topic == EVENTS_STITCHED.name}
        self._assigned -= revoked
        self._buffer = [r for r in self._buffer
                        if r.partition not in (revoked if r.origin is None else revoked_stitched)]  # fmt: skip
        self.writer.partitions_revoked(sorted(revoked))
        for partition in revoked:
            with contextlib.suppress(KeyError):  # no lag measured yet
                metrics.CONSUMER_LAG.remove(str(partition))
        log.info("partitions_revoked", partitions=sorted(revoked))
