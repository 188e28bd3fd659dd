"""The interaction service's Kafka shell: profile changes and segment changes in, actions planned.

The batches come from the services' consumer runtime (:mod:`ecrm_schemas.consumer_runtime`:
batching by size and time, commits after the batch, rebalances, the fatal-error policy). For
each batch: decode (invalid records are dead-lettered) → one database transaction
(:mod:`.intake`: profiles, contact state, cancelled waits, loyalty points, planned actions)
→ flush the producer → commit the offsets. The dispatcher (:mod:`ecrm_interaction.delivery.dispatcher`)
carries the actions out, so a mail outage never holds the consumer up. A batch whose
transaction fails on the database or the broker is retried, uncommitted; one that fails
otherwise ends the service uncommitted, and the batch comes again to the partitions' next
owner, the unique keys keeping it from acting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import structlog
from confluent_kafka import KafkaException, Message
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from tenacity import Retrying, before_sleep_log, retry_if_exception, wait_exponential

from ecrm_interaction import metrics
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.consumer.records import ConsumedRecord
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store
from ecrm_schemas.consumer_runtime import EXIT_BATCH_FAILED, BatchFailed, StreamRuntime, exit_unacked
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.kafka_producer import DeliveryError, ReliableProducer
from ecrm_schemas.profile import ProfileChanged
from ecrm_schemas.segments import SegmentMembershipChanged
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import PROFILE_CHANGES, SEGMENT_MEMBERSHIP
from ecrm_schemas.validation import field_errors

log = structlog.get_logger()


class InteractionWorker:
    def __init__(
        self,
        settings: InteractionSettings,
        store: Store,
        producer: ReliableProducer | None = None,
        suppressions: SuppressionList | None = None,
    ) -> None:
        self.settings, self.store = settings, store
        self.suppressions = suppressions if suppressions is not None else SuppressionList()
        """Erased customers: their changes still in flight are dropped (:mod:`ecrm_interaction.privacy.requests`)."""
        self.producer = producer or ReliableProducer(settings.kafka_client_config())
        self.intake = IntakeStep(store, settings.tracking_secret.get_secret_value())
        self._runtime: StreamRuntime[ConsumedRecord] | None = None
        self.on_planned: Callable[[], None] | None = None
        """Called (on the consumer's thread) once a batch that planned actions is committed."""
        self._stopping = threading.Event()

    @property
    def ready(self) -> bool:
        """The consumer is subscribed (``/readyz``)."""
        return self._runtime is not None and self._runtime.running.is_set()

    def _build_runtime(self) -> StreamRuntime[ConsumedRecord]:
        # The range assignor (the builder's) keeps a customer's profile and segment changes on one
        # replica: both topics have the same partition count and key.
        config = self.settings.kafka_consumer_config(self.settings.interaction_group_id, **{"fetch.wait.max.ms": 100})
        size, wait_s = self.settings.interaction_batch_size, self.settings.interaction_batch_wait_s
        topics = [PROFILE_CHANGES.name, SEGMENT_MEMBERSHIP.name]
        # Collecting between batches: automatic collections during a batch walked its many
        # short-lived objects again and again (3,077 against 2,680 changes/s in the benchmark).
        return StreamRuntime(config, topics, self, _consumed, max_batch_size=size, max_batch_wait_s=wait_s,
                             collect_garbage=True)  # fmt: skip

    def create(self, partitions: frozenset[tuple[str, int]]) -> _Assignment:
        return _Assignment(self, partitions)

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set, in a thread (the consumer runtime is synchronous).

        A batch is taken, the producer flushed (dead letters acknowledged), then its offsets are
        committed. Database and broker errors are retried on the same batch, backing off, until
        stopping; any other failure is fatal: nothing more is committed and :meth:`fatal` ends the
        service, so that the batch comes again to whoever holds its partitions next (the unique
        keys keep it from acting twice).
        """
        runtime = self._runtime = self._build_runtime()
        self._stopping.clear()
        consuming = asyncio.ensure_future(asyncio.to_thread(runtime.run))
        asked = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({consuming, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()
            runtime.stop()
            self._stopping.set()
            try:
                await consuming
            except Exception as exc:
                self.fatal(exc)
            finally:
                with contextlib.suppress(DeliveryError):
                    self.producer.flush_or_raise(10)

    def fatal(self, exc: BaseException) -> None:
        """The consumer stopped on an error (see :meth:`run`): leave the process, committing nothing more."""
        exit_unacked(EXIT_BATCH_FAILED, "batch_failed" if isinstance(exc, BatchFailed) else "consumer_failed",
                     exc.__cause__ or exc)  # fmt: skip

    def _back_off(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # a stop cuts the back-off short

    def process(self, records: list[ConsumedRecord]) -> None:
        """Take one batch and flush the producer; retried while the database or the broker fail."""
        for attempt in Retrying(
            stop=lambda _state: self._stopping.is_set(),
            wait=wait_exponential(multiplier=0.2, max=10),
            sleep=self._back_off,
            retry=retry_if_exception(_transient),
            before_sleep=before_sleep_log(logging.getLogger("ecrm.interaction"), logging.WARNING),
            reraise=True,
        ):
            with attempt:
                self.take(records)
                self.producer.flush_or_raise(30)

    def take(self, messages: list[ConsumedRecord]) -> Intake:
        """Decode and record one batch, in one transaction (:mod:`.intake`: a fixed number of statements)."""
        now = datetime.now(UTC)
        emitted: list[datetime] = []
        changes: list[ProfileChanged | SegmentMembershipChanged] = []
        consumed = Counter[str]()  # the metrics, counted once per batch
        # Profile changes first: a segment change of the batch then sees the profile it was
        # evaluated on (the order within each topic is kept).
        for message in sorted(messages, key=lambda m: m.topic != PROFILE_CHANGES.name):
            try:
                if message.topic == SEGMENT_MEMBERSHIP.name:
                    segment_change = SegmentMembershipChanged.model_validate_json(message.value)
                    if self.suppressions.matches(segment_change.customer_id):
                        consumed["suppressed"] += 1
                        continue
                    consumed["segment"] += 1
                    changes.append(segment_change)
                else:
                    change = ProfileChanged.model_validate_json(message.value)
                    consumed["profile"] += 1
                    profile = change.profile
                    if self.suppressions.matches(change.customer_id, profile.user_id, profile.anonymous_id):
                        consumed["suppressed"] += 1
                        continue
                    changes.append(change)
                    emitted.append(change.emitted_at.replace(tzinfo=change.emitted_at.tzinfo or UTC))
            except ValidationError as exc:
                self._dead_letter(message, exc)
        for counter, kind in ((metrics.CHANGES_CONSUMED, "profile"), (metrics.SEGMENT_CHANGES_CONSUMED, "segment"),
                              (metrics.SUPPRESSED, "suppressed")):  # fmt: skip
            if consumed[kind]:
                counter.inc(consumed[kind])
        with self.store.sessions.begin() as session:  # the rules as of this batch, in its transaction
            rules = rule_store.rules_in_force(session)
            program = rule_store.loyalty_program(session)
            outcome = self.intake.take(session, changes, rules, program, now)
        if outcome.planned and self.on_planned is not None:
            self.on_planned()
        committed = datetime.now(UTC)
        for at in emitted:
            metrics.DECISION_SECONDS.observe(max(0.0, (committed - at).total_seconds()))
        return outcome

    def _dead_letter(self, message: ConsumedRecord, exc: ValidationError) -> None:
        topic = message.topic or PROFILE_CHANGES.name
        letter = DeadLetter.build(
            topic=topic,
            source="interaction",
            reason="invalid_event",
            errors=field_errors(exc),
            payload=message.value,
            partition=message.partition,
            offset=message.offset,
        )
        assert PROFILE_CHANGES.dead_letter is not None
        self.producer.produce(PROFILE_CHANGES.dead_letter, letter.model_dump_json().encode(), key=message.key)
        metrics.DEAD_LETTERS.inc()
        log.warning("record_dead_lettered", topic=topic, partition=message.partition, offset=message.offset)


class _Assignment:
    """The partitions one assignment holds, published as ``ecrm_interaction_assigned_partitions``."""

    def __init__(self, worker: InteractionWorker, partitions: frozenset[tuple[str, int]]) -> None:
        self.worker = worker
        self._publish(partitions)

    def process(self, batch: list[ConsumedRecord]) -> None:
        self.worker.process(batch)

    def tick(self, lag: Mapping[tuple[str, int], int]) -> None:
        pass

    def close(self) -> None:
        self._publish(frozenset())

    @staticmethod
    def _publish(partitions: frozenset[tuple[str, int]]) -> None:
        for topic in (PROFILE_CHANGES.name, SEGMENT_MEMBERSHIP.name):
            metrics.ASSIGNED_PARTITIONS.labels(topic).set(sum(1 for t, _ in partitions if t == topic))


def _transient(exc: BaseException) -> bool:
    """Errors a later attempt may not meet: the database or the broker unavailable, a unique key taken
    by a replica that held the partition until a rebalance, an unacknowledged dead letter."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | IntegrityError | DeliveryError | KafkaException)


def _consumed(message: Message) -> ConsumedRecord:
    return ConsumedRecord(
        message.topic() or "", message.partition() or 0, message.offset() or 0, message.key(), message.value() or b"",
        _headers(message),
    )  # fmt: skip


def _headers(message: Message) -> tuple[tuple[str, bytes], ...]:
    pairs: list[tuple[str, bytes]] = []
    for name, value in message.headers() or []:  # type: ignore[str-unpack]  # the stubs say list[str|...]
        pairs.append((name, value.encode() if isinstance(value, str) else (value or b"")))
    return tuple(pairs)
