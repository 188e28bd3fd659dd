"""The one Kafka consumer runtime of the services: batches by size and time, state per assignment,
offsets committed after the batch, one policy for fatal errors.

The shape is getsentry/arroyo's: a factory builds a :class:`Strategy` for each assignment
(:meth:`StrategyFactory.create` with the partitions held), so whatever the strategy knows of
its partitions disappears with them; the runtime polls, batches, hands the batch over and
commits. arroyo's ``StreamProcessor`` itself is not used: it polls and wraps one message at a
time (a ``BrokerValue``, a ``Message``, clock reads and a strategy ``poll``/``submit`` for every
record), which measured about 37 µs per message with ``Reduce → RunTask → CommitOffsets`` and
no work against tansu on the reference machine (26.6k messages/s), where ``consume()`` batches
cost 3.3 µs: more than the aggregator spends folding an event. It also subscribes to one
topic, where both services read two co-partitioned topics.

Guarantees, for every service:

* a batch is handed over when it holds ``max_size`` records or ``max_wait_s`` after its
  oldest record was produced (records that queued up while the previous batch was processed
  have waited already);
* at least once: a batch's offsets are committed, synchronously, only after
  :meth:`Strategy.process` returned; a commit refused because a rebalance took the partitions
  is only logged (their next owner reads the batch again);
* on a rebalance (partitions revoked or lost), records buffered for the partitions that go
  are dropped unprocessed, the strategy is closed (its state forgotten) and a new one is built
  for what is still held;
* the timer (:meth:`Strategy.tick`) runs between batches on the same thread, with the consumer
  lag of the partitions held;
* with ``collect_garbage``, the cyclic garbage collector runs between batches, not during them
  (a batch allocates many short-lived acyclic objects that automatic collections walk again
  and again): the young generations after every batch, all of them every
  ``FULL_COLLECTION_INTERVAL_S``, busy or idle. The collector is the process's: whatever else
  runs in it (an API, a dispatcher) is collected on the same schedule;
* **fatal errors**: a batch that :meth:`Strategy.process` cannot process (it raised) stops the
  runtime with nothing more committed: :meth:`StreamRuntime.run` leaves the group and raises
  :class:`BatchFailed`, and the service ends (:func:`exit_unacked`), so that the batch is
  delivered again to whoever holds its partitions next. Retrying what may pass (a database
  restarting) is the strategy's business, until :meth:`StreamRuntime.stop`. A batch that fails
  because the runtime was asked to stop is not an error: it is simply not committed. A fatal
  client error (``KafkaError.fatal()``) is raised as it is.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, Protocol, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

log = structlog.get_logger()

EXIT_TOO_MANY_INVALID = 70
"""Exit code: the topic is mostly invalid; stopping beats pouring it into the dead-letter queue."""
EXIT_BATCH_FAILED = 75
"""Exit code: a batch could not be processed; nothing of it was committed."""

FULL_COLLECTION_INTERVAL_S = 10.0
"""With ``collect_garbage``: how often every generation is collected (the old one holds the cycles)."""

Where = tuple[str, int]
"""A partition: (topic, partition number)."""
R = TypeVar("R")


def exit_unacked(code: int, reason: str, exc: BaseException) -> NoReturn:
    """Leave the process at once, committing nothing more."""
    log.critical(reason, error=str(exc), error_type=type(exc).__name__, exit_code=code)
    logging.shutdown()
    os._exit(code)


class BatchFailed(Exception):
    """A batch could not be processed; nothing of it was committed (the cause is ``__cause__``)."""


class Strategy(Protocol):
    """What a service does with the batches of one assignment."""

    def process(self, batch: list[Any]) -> None:
        """Process a batch (its records in partition order); raising is fatal (see the module docstring)."""

    def tick(self, lag: Mapping[Where, int]) -> None:
        """The timer, between batches; ``lag``: records behind the end, per partition held."""

    def close(self) -> None:
        """The assignment ends (rebalance or shutdown): forget what was known of its partitions."""


class StrategyFactory(Protocol):
    def create(self, partitions: frozenset[Where]) -> Strategy:
        """A strategy for the partitions now held (never empty)."""


class KafkaMessage(Protocol):
    """The part of confluent-kafka's ``Message`` the batching reads."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


M = TypeVar("M", bound=KafkaMessage)


@dataclass
class PendingBatch(Generic[M]):
    """Messages waiting to be processed, and when they are due (pure: the caller gives the time)."""

    max_size: int
    max_wait_s: float
    messages: list[M] = field(default_factory=list)
    opened_at: float | None = None
    """When the batch's oldest message was produced (wall clock, never later than its arrival)."""

    def add(self, messages: Iterable[M], now: float) -> None:
        before = len(self.messages)
        self.messages.extend(messages)
        if before == 0 and self.messages:
            _, produced_ms = self.messages[0].timestamp()
            # Records that queued up while the previous batch was processed have waited already:
            # their batch closes on their age, not on a new wait.
            self.opened_at = min(now, produced_ms / 1000) if produced_ms > 0 else now

    @property
    def room(self) -> int:
        return max(1, self.max_size - len(self.messages))

    def due(self, now: float) -> bool:
        if self.opened_at is None:
            return False
        return len(self.messages) >= self.max_size or now - self.opened_at >= self.max_wait_s

    def wait_s(self, now: float, idle_s: float = 0.05) -> float:
        """How long the next poll may block: briefly when empty (a batch's clock starts with its first record)."""
        if self.opened_at is None:
            return idle_s
        return min(max(self.opened_at + self.max_wait_s - now, 0.0), 1.0)

    def drop(self, partitions: set[Where]) -> None:
        """Forget the messages of partitions that were revoked (their next owner reads them again)."""
        self.messages = [m for m in self.messages if (m.topic() or "", m.partition() or 0) not in partitions]
        if not self.messages:
            self.opened_at = None

    def take(self) -> list[M]:
        messages, self.messages, self.opened_at = self.messages, [], None
        return messages


def next_offsets(messages: Sequence[KafkaMessage]) -> dict[Where, int]:
    """The offsets to commit once ``messages`` are processed: per partition, one past the last."""
    offsets: dict[Where, int] = {}
    for message in messages:
        offset = message.offset() or 0
        where = (message.topic() or "", message.partition() or 0)
        if offset + 1 > offsets.get(where, 0):
            offsets[where] = offset + 1
    return offsets


class StreamRuntime(Generic[R]):
    """Consumes ``topics`` in a group and hands batches to the strategy of the current assignment.

    ``decode`` turns a client message into the service's record type (called once per record,
    when the batch is handed over). :meth:`run` blocks (run it in a thread in an asyncio
    service); :meth:`stop` may be called from any thread or a signal handler.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topics: Sequence[str],
        factory: StrategyFactory,
        decode: Callable[[Message], R],
        *,
        max_batch_size: int,
        max_batch_wait_s: float,
        tick_interval_s: float | None = None,
        collect_garbage: bool = False,
    ) -> None:
        self.config, self.topics, self.factory, self.decode = config, list(topics), factory, decode
        self.tick_interval_s, self.collect_garbage = tick_interval_s, collect_garbage
        self._batch: PendingBatch[Message] = PendingBatch(max_batch_size, max_batch_wait_s)
        self._assigned: set[Where] = set()
        self._strategy: Strategy | None = None
        self._stopping = threading.Event()
        self.running = threading.Event()
        """Set while the consumer is subscribed (readiness)."""

    @property
    def assigned(self) -> frozenset[Where]:
        return frozenset(self._assigned)

    def stop(self, *_args: Any) -> None:
        """Finish the current step and leave; a batch in progress is not committed."""
        self._stopping.set()

    def run(self) -> None:
        """Consume until :meth:`stop`; raises :class:`BatchFailed` when a batch cannot be processed."""
        if self.collect_garbage:
            gc.disable()  # collected explicitly between batches
        consumer = Consumer(self.config)
        consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        self.running.set()
        next_tick = time.monotonic() + (self.tick_interval_s or 0.0)
        next_full_collection = time.monotonic() + FULL_COLLECTION_INTERVAL_S
        try:
            while not self._stopping.is_set():
                batch = self._batch
                messages = consumer.consume(num_messages=batch.room, timeout=batch.wait_s(time.time()))
                batch.add(self._valid(messages), time.time())
                if batch.due(time.time()):
                    self._process(consumer)
                    if self.collect_garbage:
                        gc.collect(1)  # the batch's objects are gone: cheap
                if self.tick_interval_s is not None and time.monotonic() >= next_tick:
                    self._tick(consumer)
                    next_tick = time.monotonic() + self.tick_interval_s
                if self.collect_garbage and time.monotonic() >= next_full_collection:
                    gc.collect()
                    next_full_collection = time.monotonic() + FULL_COLLECTION_INTERVAL_S
        finally:
            self.running.clear()
            consumer.close()  # revokes the assignment: the strategy is closed
            if self.collect_garbage:
                gc.enable()

    @staticmethod
    def _valid(messages: list[Message]) -> list[Message]:
        if all(m.error() is None for m in messages):
            return messages
        valid = []
        for message in messages:
            error = message.error()
            if error is None:
                valid.append(message)
            elif error.fatal():
                raise KafkaException(error)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("kafka_consume_error", error=str(error))
        return valid

    def _process(self, consumer: Consumer) -> None:
        messages = self._batch.take()
        strategy = self._strategy
        assert strategy is not None, "records arrive only for partitions held"
        decode = self.decode
        try:
            strategy.process([decode(m) for m in messages])
        except Exception as exc:
            if self._stopping.is_set():
                log.info("batch_abandoned_stopping", records=len(messages))
                return  # uncommitted: delivered again
            raise BatchFailed(f"a batch of {len(messages)} records could not be processed") from exc
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets(messages).items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions meanwhile: their next owner reads the
            # batch again, and the services' writes are idempotent.
            log.warning("kafka_commit_failed", error=str(exc))

    def _tick(self, consumer: Consumer) -> None:
        if self._strategy is None:
            return
        lag: dict[Where, int] = {}
        for topic, partition in sorted(self._assigned):
            tp = TopicPartition(topic, partition)
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                [position] = consumer.position([tp])
            except KafkaException:
                continue
            if position.offset >= 0 and high >= 0:
                lag[(topic, partition)] = max(0, high - position.offset)
        try:
            self._strategy.tick(lag)
        except Exception as exc:  # the next tick tries again; batches go on meanwhile
            log.error("timer_failed", error=str(exc))

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self._rebuild_strategy()
        log.info("partitions_assigned", partitions=sorted(self._assigned))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= revoked
        self._batch.drop(revoked)
        self._rebuild_strategy()
        log.info("partitions_revoked", partitions=sorted(revoked), held=sorted(self._assigned))

    def _rebuild_strategy(self) -> None:
        if self._strategy is not None:
            strategy, self._strategy = self._strategy, None
            try:
                strategy.close()
            except Exception as exc:  # forgetting must not stop the rebalance
                log.error("strategy_close_failed", error=str(exc))
        if self._assigned:
            self._strategy = self.factory.create(frozenset(self._assigned))
