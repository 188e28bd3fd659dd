"""The aggregator's Kafka shell: a faust-streaming app with one batching agent.

The agent takes batches with ``noack_take`` and acks a batch's events itself, only after
:meth:`BatchWriter.process` returned; faust commits offsets of acked events only. (Plain
``take``/``take_events`` ack in a ``finally``, so a batch cancelled at shutdown would be
committed unwritten.) A worker that stops or dies mid-batch has that batch delivered
again, and the idempotent writes (insert deduplication tokens, ReplacingMergeTree,
position-checked profile folding) keep the result exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import faust
import structlog
from confluent_kafka import Producer

from ecrm_aggregator.batch_writer import BatchWriter, TooManyInvalid
from ecrm_aggregator.decode import SourceRecord
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.topics import EVENTS

log = structlog.get_logger()
EXIT_TOO_MANY_INVALID = 70


def faust_broker_url(bootstrap_servers: str) -> str:
    """``h1:9092,h2:9092`` → ``kafka://h1:9092;h2:9092`` (faust's notation)."""
    return "kafka://" + ";".join(s.strip() for s in bootstrap_servers.split(",") if s.strip())


def build_app(settings: AggregatorSettings, writer: BatchWriter) -> faust.App:
    session_timeout_s = settings.kafka_session_timeout_ms / 1000
    app = faust.App(
        settings.aggregator_group_id,
        broker=faust_broker_url(settings.kafka_bootstrap_servers),
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=min(3.0, session_timeout_s / 10),
        broker_commit_interval=1.0,
        # Do not wait for the batch in flight before stopping or rebalancing: it is not
        # acked, so it is delivered again, and waiting could block forever while
        # ClickHouse is down.
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    events = app.topic(EVENTS.name, key_type=bytes, value_type=bytes, partitions=EVENTS.partitions)

    @app.agent(events)
    async def aggregate(stream: faust.StreamT) -> None:
        batches = stream.noack_take(settings.aggregator_batch_size, settings.aggregator_batch_wait_s)  # type: ignore[attr-defined]
        async for batch in batches:
            records = [
                SourceRecord(e.message.partition, e.message.offset, e.message.key, e.message.value) for e in batch
            ]
            try:
                await asyncio.to_thread(writer.process, records)
            except TooManyInvalid as exc:
                # Leave without acking or committing anything of this batch.
                log.critical("too_many_invalid_events", error=str(exc))
                logging.shutdown()
                os._exit(EXIT_TOO_MANY_INVALID)
            for event in batch:
                await stream.ack(event)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types the receiver narrower than it calls it
    async def stop_retrying(_app: Any, *_args: Any, **_kwargs: Any) -> None:
        writer.stop()

    return app


def kafka_producer(settings: AggregatorSettings) -> Producer:
    return Producer(
        {
            **settings.kafka_client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "logger": logging.getLogger("ecrm.kafka"),
        }
    )
