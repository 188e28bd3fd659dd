"""The interaction service's Kafka shell: profile changes and segment changes in, actions planned.

For each batch: decode (invalid records are dead-lettered) → one database transaction
(:mod:`.intake`: profiles, contact state, cancelled waits, loyalty points, planned actions)
→ commit the offsets. The dispatcher (:mod:`ecrm_interaction.delivery.dispatcher`) carries the actions out, so a mail
outage never holds the consumer up. A batch whose transaction fails is not committed: the
consumer is rebuilt and the batch comes again, and the unique keys keep it from acting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import structlog
from confluent_kafka import Consumer, Message, TopicPartition
from pydantic import ValidationError

from ecrm_interaction import metrics
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.consumer.records import ConsumedRecord
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store
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
        self.ready = False
        self._assigned: set[tuple[str, int]] = set()

    def _consumer(self) -> Consumer:
        consumer = Consumer(
            {
                **self.settings.kafka_client_config(),
                "group.id": self.settings.interaction_group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.settings.kafka_session_timeout_ms,
                "fetch.wait.max.ms": 100,
                "logger": logging.getLogger("ecrm.kafka"),
            }
        )
        consumer.subscribe(
            [PROFILE_CHANGES.name, SEGMENT_MEMBERSHIP.name], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        return consumer

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self._publish_assignment()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned -= {(tp.topic, tp.partition) for tp in partitions}
        self._publish_assignment()

    def _publish_assignment(self) -> None:
        for topic in (PROFILE_CHANGES.name, SEGMENT_MEMBERSHIP.name):
            metrics.ASSIGNED_PARTITIONS.labels(topic).set(sum(1 for t, _ in self._assigned if t == topic))
        log.info("partitions_assigned", partitions=sorted(self._assigned))

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; a failed batch rebuilds the consumer and comes again."""
        while not stopping.is_set():
            consumer = self._consumer()
            self.ready = True
            try:
                await self._consume(consumer, stopping)
            except Exception as exc:
                log.error("batch_not_committed", error=str(exc))
                await asyncio.sleep(1)
            finally:
                self.ready = False
                await asyncio.to_thread(consumer.close)
                self._assigned.clear()
                self._publish_assignment()
        with contextlib.suppress(DeliveryError):
            self.producer.flush_or_raise(10)

    async def _consume(self, consumer: Consumer, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            messages = await asyncio.to_thread(consumer.consume, self.settings.interaction_batch_size, 0.5)
            records = [
                ConsumedRecord(
                    m.topic() or "",
                    m.partition() or 0,
                    m.offset() or 0,
                    m.key(),
                    m.value() or b"",
                    _headers(m),
                )
                for m in messages
                if m.error() is None
            ]
            if not records:
                continue
            await asyncio.to_thread(self.take, records)
            await asyncio.to_thread(self.producer.flush_or_raise, 30)
            await asyncio.to_thread(consumer.commit, asynchronous=False)

    def take(self, messages: list[ConsumedRecord]) -> Intake:
        """Decode and record one batch, in one transaction (:mod:`.intake`: a fixed number of statements)."""
        rules, _ = self.store.read(rule_store.enabled_rules)
        program = self.store.read(rule_store.loyalty_program)
        now = datetime.now(UTC)
        emitted: list[datetime] = []
        changes: list[ProfileChanged | SegmentMembershipChanged] = []
        # Profile changes first: a segment change of the batch then sees the profile it was
        # evaluated on (the order within each topic is kept).
        for message in sorted(messages, key=lambda m: m.topic != PROFILE_CHANGES.name):
            try:
                if message.topic == SEGMENT_MEMBERSHIP.name:
                    segment_change = SegmentMembershipChanged.model_validate_json(message.value)
                    if self.suppressions.matches(segment_change.customer_id):
                        metrics.SUPPRESSED.inc()
                        continue
                    metrics.SEGMENT_CHANGES_CONSUMED.inc()
                    changes.append(segment_change)
                else:
                    change = ProfileChanged.model_validate_json(message.value)
                    metrics.CHANGES_CONSUMED.inc()
                    profile = change.profile
                    if self.suppressions.matches(change.customer_id, profile.user_id, profile.anonymous_id):
                        metrics.SUPPRESSED.inc()
                        continue
                    changes.append(change)
                    emitted.append(change.emitted_at.replace(tzinfo=change.emitted_at.tzinfo or UTC))
            except ValidationError as exc:
                self._dead_letter(message, exc)
        with self.store.sessions.begin() as session:
            outcome = self.intake.take(session, changes, rules, program, now)
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


def _headers(message: Message) -> tuple[tuple[str, bytes], ...]:
    pairs: list[tuple[str, bytes]] = []
    for name, value in message.headers() or []:  # type: ignore[str-unpack]  # the stubs say list[str|...]
        pairs.append((name, value.encode() if isinstance(value, str) else (value or b"")))
    return tuple(pairs)
