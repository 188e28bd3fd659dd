"""The interaction service's Kafka shell: consume profile changes, act on rules, commit.

For each batch of profile changes: decide (pure) → claim each send in the database (one
per dedup key) → render and deliver over SMTP → record the outcome → publish an
``Email Sent`` event → and only then commit the offsets. A batch that cannot finish (SMTP
down past the retry budget) is not committed: the consumer is rebuilt and the batch comes
again, and claimed sends that already went out are not repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from confluent_kafka import Consumer, Message
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ecrm_interaction import metrics
from ecrm_interaction.decide import Decision, decide
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.smtp_sender import SmtpTarget, compose, deliver
from ecrm_interaction.store import Store
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import encode_event
from ecrm_schemas.kafka_producer import DeliveryError, ReliableProducer
from ecrm_schemas.profile import ProfileChanged
from ecrm_schemas.topics import EVENTS, PROFILE_CHANGES
from ecrm_schemas.validation import field_errors, validate_event

log = structlog.get_logger()


class SendFailed(RuntimeError):
    """SMTP kept failing for one send; the batch must not be committed."""


class InteractionWorker:
    def __init__(self, settings: InteractionSettings, store: Store, retry_budget_s: float = 60.0) -> None:
        self.settings, self.store = settings, store
        self.smtp = SmtpTarget.from_url(settings.smtp_url)
        self.retry_budget_s = retry_budget_s
        self.producer = ReliableProducer(settings.kafka_client_config())
        self.ready = False

    def _consumer(self) -> Consumer:
        consumer = Consumer(
            {
                **self.settings.kafka_client_config(),
                "group.id": self.settings.interaction_group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.settings.kafka_session_timeout_ms,
                "logger": logging.getLogger("ecrm.kafka"),
            }
        )
        consumer.subscribe([PROFILE_CHANGES.name])
        return consumer

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; a failed batch rebuilds the consumer and comes again."""
        while not stopping.is_set():
            consumer = self._consumer()
            self.ready = True
            try:
                await self._consume(consumer, stopping)
            except (SendFailed, DeliveryError) as exc:
                log.error("batch_not_committed", error=str(exc))
                await asyncio.sleep(1)
            finally:
                self.ready = False
                await asyncio.to_thread(consumer.close)
        with contextlib.suppress(DeliveryError):
            self.producer.flush_or_raise(10)

    async def _consume(self, consumer: Consumer, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            messages = await asyncio.to_thread(consumer.consume, self.settings.interaction_batch_size, 0.5)
            messages = [m for m in messages if m.error() is None]
            if not messages:
                continue
            for message in messages:
                await self.handle(message)
            await asyncio.to_thread(self.producer.flush_or_raise, 30)
            await asyncio.to_thread(consumer.commit, asynchronous=False)

    async def handle(self, message: Message) -> None:
        metrics.CHANGES_CONSUMED.inc()
        try:
            change = ProfileChanged.model_validate_json(message.value() or b"")
        except ValidationError as exc:
            self._dead_letter(message, exc)
            return
        rules, templates = await asyncio.to_thread(self.store.enabled_rules)
        for decision in decide(change, rules, templates):
            await self.act(change, decision)

    async def act(self, change: ProfileChanged, decision: Decision) -> None:
        match = decision.match
        send = await asyncio.to_thread(
            self.store.claim_send,
            dedup_key=match.dedup_key,
            rule_id=match.rule.id,
            customer_id=change.customer_id,
            trigger_message_id=match.trigger.message_id,
        )
        if send is None:
            metrics.DECISIONS.labels("duplicate", "already_decided").inc()
            return
        if decision.skip_reason is not None or decision.email is None or decision.recipient is None:
            reason = decision.skip_reason or "nothing_to_send"
            await asyncio.to_thread(self.store.finish_send, send.id, status="skipped", reason=reason)
            metrics.DECISIONS.labels("skipped", reason).inc()
            log.info("send_skipped", rule=match.rule.id, reason=reason)
            return
        message = compose(
            decision.email,
            sender=self.settings.email_from,
            recipient=decision.recipient,
            send_id=send.id,
            rule_id=match.rule.id,
        )
        started = time.perf_counter()
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(self.retry_budget_s),
                wait=wait_exponential(multiplier=0.2, max=5),
                retry=retry_if_exception_type(Exception),
                reraise=True,
            ):
                with attempt:
                    await deliver(message, self.smtp, self.settings.smtp_timeout_s)
        except Exception as exc:
            await asyncio.to_thread(
                self.store.finish_send,
                send.id,
                status="failed",
                reason=type(exc).__name__,
                subject=decision.email.subject,
            )
            metrics.DECISIONS.labels("failed", type(exc).__name__).inc()
            raise SendFailed(f"rule {match.rule.id}: {type(exc).__name__}") from exc
        metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        await asyncio.to_thread(
            self.store.finish_send, send.id, status="sent", recipient=decision.recipient, subject=decision.email.subject
        )
        metrics.DECISIONS.labels("sent", "rule_matched").inc()
        log.info("email_sent", rule=match.rule.id, send_id=send.id)
        self._publish_email_sent(change, send.id, match.rule.id, match.rule.template_id, decision.email.subject)

    def _publish_email_sent(
        self, change: ProfileChanged, send_id: str, rule_id: str, template: str, subject: str
    ) -> None:
        """Tell the pipeline what was sent, so the email aggregates count it."""
        profile = change.profile
        now = datetime.now(UTC).isoformat()
        event: dict[str, Any] = {
            "type": "track",
            "event": "Email Sent",
            "messageId": f"email-sent-{send_id}",
            "timestamp": now,
            "receivedAt": now,
            "properties": {"email_id": send_id, "rule_id": rule_id, "template": template, "subject": subject},
            "context": {"library": {"name": "ecrm-interaction"}},
        }
        if profile.user_id:
            event["userId"] = profile.user_id
        else:
            event["anonymousId"] = profile.anonymous_id or change.customer_id
        valid = validate_event(event)  # the same gate as the collector's
        self.producer.produce(EVENTS.name, encode_event(valid), key=valid.customer_key.encode())

    def _dead_letter(self, message: Message, exc: ValidationError) -> None:
        letter = DeadLetter.build(
            topic=PROFILE_CHANGES.name,
            source="interaction",
            reason="invalid_event",
            errors=field_errors(exc),
            payload=message.value() or b"",
            partition=message.partition(),
            offset=message.offset(),
        )
        assert PROFILE_CHANGES.dead_letter is not None
        self.producer.produce(PROFILE_CHANGES.dead_letter, letter.model_dump_json().encode(), key=message.key())
        metrics.DEAD_LETTERS.inc()
        log.warning("profile_change_dead_lettered", partition=message.partition(), offset=message.offset())
