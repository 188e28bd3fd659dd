"""The aggregator's faust-streaming shell (``AGGREGATOR_ENGINE=faust``): one batching agent.

The default engine is :mod:`.consumer` (faust's per-message machinery caps a process at
about 10.7k events/s on the reference machine); both hand the same batches to the same
:class:`BatchWriter`.

The agent takes batches with ``noack_take`` and acks a batch's events itself, only after
:meth:`BatchWriter.process` returned; faust commits offsets of acked events only. (Plain
``take``/``take_events`` ack in a ``finally``, so a batch cancelled at shutdown would be
committed unwritten.) A worker that stops or dies mid-batch has that batch delivered
again, and the idempotent writes (insert deduplication tokens, ReplacingMergeTree,
position-checked profile folding) keep the result exactly once.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import faust
import structlog

from ecrm_aggregator import metrics
from ecrm_aggregator.batch_writer import BatchWriter, TooManyInvalid
from ecrm_aggregator.consumer import EXIT_BATCH_FAILED, EXIT_TOO_MANY_INVALID, exit_unacked
from ecrm_aggregator.decode import SourceRecord, parse_origin
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.own_events import origin_of_headers
from ecrm_schemas.topics import EVENTS, EVENTS_STITCHED, ORIGIN_HEADER

log = structlog.get_logger()


def faust_broker_url(bootstrap_servers: str) -> str:
    """``h1:9092,h2:9092`` → ``kafka://h1:9092;h2:9092`` (faust's notation)."""
    return "kafka://" + ";".join(s.strip() for s in bootstrap_servers.split(",") if s.strip())


def faust_credentials(settings: AggregatorSettings) -> faust.auth.Credentials | None:
    """The same security settings the confluent-kafka clients use, in faust's terms."""
    protocol = settings.kafka_security_protocol
    tls = ssl.create_default_context() if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=tls,
        )
    return faust.SSLCredentials(tls) if tls is not None else None


def build_app(settings: AggregatorSettings, writer: BatchWriter) -> faust.App:
    # The same group settings as every confluent-kafka consumer, in faust's terms.
    consumer = settings.kafka_consumer_config(settings.aggregator_group_id)
    app = faust.App(
        settings.aggregator_group_id,
        broker=faust_broker_url(settings.kafka_bootstrap_servers),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset=consumer["auto.offset.reset"],
        broker_session_timeout=consumer["session.timeout.ms"] / 1000,
        broker_heartbeat_interval=consumer["heartbeat.interval.ms"] / 1000,
        broker_commit_interval=1.0,
        # Do not wait for the batch in flight before stopping or rebalancing: it is not
        # acked, so it is delivered again, and waiting could block forever while
        # ClickHouse is down.
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    # One agent on both topics: faust's assignor gives a worker the same partitions of both.
    events = app.topic(
        EVENTS.name, EVENTS_STITCHED.name, key_type=bytes, value_type=bytes, partitions=EVENTS.partitions
    )

    @app.agent(events)
    async def aggregate(stream: faust.StreamT) -> None:
        batches = stream.noack_take(settings.aggregator_batch_size, settings.aggregator_batch_wait_s)  # type: ignore[attr-defined]
        async for batch in batches:
            records = [_record(e.message) for e in batch]
            try:
                await asyncio.to_thread(writer.process, records)
            except asyncio.CancelledError:
                raise  # stopping: the batch stays unacked and comes again
            except TooManyInvalid as exc:
                exit_unacked(EXIT_TOO_MANY_INVALID, "too_many_invalid_events", exc)
            except Exception as exc:
                # faust would restart the agent, and acks of later batches would commit past
                # this one: leave now, so the batch is delivered again.
                exit_unacked(EXIT_BATCH_FAILED, "batch_failed", exc)
            for event in batch:
                await stream.ack(event)
            # Commit now rather than on the timer: fewer redeliveries after a rebalance.
            # (False means a timer commit was in flight; the next batch or the timer catches up.)
            await app.consumer.commit()

    @app.timer(settings.aggregator_timer_interval_s)
    async def tick() -> None:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == EVENTS.name]
        try:
            await asyncio.to_thread(writer.tick, sorted(tp.partition for tp in assigned))
        except Exception as exc:  # the next tick tries again; batches go on meanwhile
            log.error("timer_failed", error=str(exc))
        if assigned:
            highwaters = await app.consumer.highwaters(*assigned)
            for tp in assigned:
                position = await app.consumer.position(tp)
                if position is not None and tp in highwaters:
                    metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(0, highwaters[tp] - position))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types the receiver narrower than it calls it
    async def forget_revoked(_app: Any, revoked: set[Any], **_kwargs: Any) -> None:
        partitions = sorted(tp.partition for tp in revoked if tp.topic == EVENTS.name)
        await asyncio.to_thread(writer.partitions_revoked, partitions)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types the receiver narrower than it calls it
    async def stop_retrying(_app: Any, *_args: Any, **_kwargs: Any) -> None:
        writer.stop()

    return app


def _record(message: Any) -> SourceRecord:
    event_origin = origin_of_headers(message.headers)
    if message.topic != EVENTS_STITCHED.name:
        return SourceRecord(message.partition, message.offset, message.key, message.value, event_origin=event_origin)
    headers = dict(message.headers or [])
    origin = parse_origin(headers.get(ORIGIN_HEADER))
    return SourceRecord(message.partition, message.offset, message.key, message.value if origin else b"",
                        origin or (-1, -1), event_origin)  # fmt: skip


def kafka_producer(settings: AggregatorSettings) -> ReliableProducer:
    return ReliableProducer(settings.kafka_client_config())
