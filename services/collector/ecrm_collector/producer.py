"""An asyncio face on confluent-kafka's idempotent producer.

``produce`` returns a future that resolves when the broker has acknowledged the record
(acks=all) or fails with the delivery error. A background thread serves librdkafka's
delivery callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = structlog.get_logger()
# Delivery errors after which this producer's idempotence state is dead: only a new one works.
_UNUSABLE = frozenset({KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FENCED})


class DeliveryFailed(Exception):
    """The broker did not acknowledge a record (or it could not be queued)."""


class AsyncProducer:
    """Rebuilds its librdkafka producer after a fatal error (librdkafka's rule: a producer
    that raised a fatal error, e.g. fenced after an idempotence epoch problem, is unusable)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {
            **config,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": config.get("compression.type", "lz4"),
            "logger": logging.getLogger("ecrm.kafka"),
            "error_cb": self._on_error,
        }
        self._fatal = threading.Event()
        self._producer = Producer(self._config)
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal.set()

    def _rebuild_if_fatal(self) -> None:
        if self._fatal.is_set():
            self._fatal.clear()
            broken, self._producer = self._producer, Producer(self._config)
            broken.purge()
            log.warning("kafka_producer_rebuilt_after_fatal_error")

    def _poll_forever(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    def produce(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        """Queue one record; the returned future resolves on the broker's acknowledgment."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None and (err.fatal() or err.code() in _UNUSABLE):
                self._fatal.set()
            loop.call_soon_threadsafe(_settle, future, err)

        self._rebuild_if_fatal()
        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            future.set_exception(DeliveryFailed(f"could not queue the record: {exc}"))
        return future

    def queue_length(self) -> int:
        """Records waiting for delivery (librdkafka's queue)."""
        return len(self._producer)

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            metadata = self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is in flight, stop the delivery thread; returns records left undelivered."""
        left = self._producer.flush(timeout_s)
        self._stopping.set()
        self._poller.join(timeout=2)
        return left


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(DeliveryFailed(err.str()))
