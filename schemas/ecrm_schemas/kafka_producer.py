"""A synchronous idempotent producer that either delivers every record or says so.

``confluent_kafka.Producer.flush`` returns 0 even when records failed: failures only show in
delivery callbacks. :meth:`ReliableProducer.flush_or_raise` turns them into an exception,
so a consumer never commits offsets past output that did not reach Kafka. After an error
that leaves librdkafka's idempotence state unusable (fatal, fenced), the next record goes
through a new producer.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import structlog
from confluent_kafka import KafkaError, Message, Producer

log = structlog.get_logger()
UNUSABLE = frozenset({KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FENCED})


class DeliveryError(RuntimeError):
    """Some records were not acknowledged by the broker."""


class ReliableProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = {
            "compression.type": "lz4",
            "linger.ms": 5,
            **config,
            "enable.idempotence": True,
            "acks": "all",
            "logger": logging.getLogger("ecrm.kafka"),
            "error_cb": self._on_error,
        }
        self._lock = threading.Lock()
        self._failures: list[str] = []
        self._unusable = False
        self._producer = Producer(self._config)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._unusable = True

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            with self._lock:
                self._failures.append(err.str())
            if err.fatal() or err.code() in UNUSABLE:
                self._unusable = True

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Queue one record (``partition`` None: chosen by the key)."""
        if self._unusable:
            self._unusable = False
            broken, self._producer = self._producer, Producer(self._config)
            broken.purge()
            log.warning("kafka_producer_rebuilt_after_fatal_error")
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._delivered, **extra)
        self._producer.poll(0)

    def flush_or_raise(self, timeout_s: float = 30.0) -> None:
        """Wait for every queued record; raise :class:`DeliveryError` if any was not acknowledged."""
        left = self._producer.flush(timeout_s)
        with self._lock:
            failures, self._failures = self._failures, []
        if left or failures:
            raise DeliveryError(f"{left} records unacknowledged, {len(failures)} failed: {failures[:3]}")
