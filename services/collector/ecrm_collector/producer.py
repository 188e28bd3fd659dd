"""An asyncio face on confluent-kafka's idempotent producer.

``produce_all`` returns a future that resolves when the broker has acknowledged every
record (acks=all) or fails with the delivery error. A background thread serves librdkafka's
delivery callbacks; the requests a ``poll()`` settled are handed to the event loop in one
wake-up (one broker answer acknowledges many requests' records at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Sequence
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
        self._settled: deque[_Settled] = deque()
        """Requests the delivery callbacks settled, not yet handed to their event loop."""
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
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake each event loop once for the requests settled since the last call."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        while self._settled:
            settled = self._settled.popleft()
            by_loop.setdefault(settled[0], []).append(settled)
        for loop, batch in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_settle_all, batch)

    def produce_all(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> asyncio.Future[None]:
        """Queue ``(topic, key, value)`` records; the future resolves once the broker acknowledged
        all of them, or fails with the first delivery error.

        One future per request, not per record: the delivery thread counts acknowledgments
        and wakes the event loop once, which keeps a 50-event batch from costing 50 wake-ups.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not records:
            future.set_result(None)
            return future
        acknowledgment = _Acknowledgment(loop, future, len(records), self._fatal, self._settled)
        self._rebuild_if_fatal()
        produce = self._producer.produce
        try:
            for topic, key, value in records:
                produce(topic, value=value, key=key, on_delivery=acknowledgment)
        except (BufferError, KafkaException) as exc:
            acknowledgment.settled = True
            future.set_exception(DeliveryFailed(f"could not queue the record: {exc}"))
        return future

    def queue_length(self) -> int:
        """Records waiting for delivery (librdkafka's queue)."""
        return len(self._producer)

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether the broker answers a metadata request."""
        try:
            metadata = self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def close(self, timeout_s: float = 10.0) -> int:
        """Stop the delivery thread, flush what is in flight; returns records left undelivered."""
        self._stopping.set()
        self._poller.join(timeout=2)
        left = self._producer.flush(timeout_s)  # serves the remaining delivery callbacks here
        self._hand_over()
        return left


_Settled = tuple[asyncio.AbstractEventLoop, asyncio.Future[None], "DeliveryFailed | None"]


class _Acknowledgment:
    """The delivery callback of one request's records (called on the delivery thread, one at a time)."""

    __slots__ = ("fatal", "future", "loop", "pending", "settled", "sink")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[None],
        pending: int,
        fatal: threading.Event,
        sink: deque[_Settled],
    ) -> None:
        self.loop, self.future, self.pending, self.fatal, self.sink = loop, future, pending, fatal, sink
        self.settled = False

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None and (err.fatal() or err.code() in _UNUSABLE):
            self.fatal.set()
        if self.settled:
            return
        if err is not None:
            self.settled = True
            self.sink.append((self.loop, self.future, DeliveryFailed(err.str())))
            return
        self.pending -= 1
        if self.pending == 0:
            self.settled = True
            self.sink.append((self.loop, self.future, None))


def _settle_all(batch: list[_Settled]) -> None:
    for _loop, future, error in batch:
        if future.done():
            continue  # the request gave up (timeout) and cancelled it
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
