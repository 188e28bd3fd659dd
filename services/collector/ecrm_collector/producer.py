"""An asyncio face on confluent-kafka's idempotent producer.

``produce`` returns a future that resolves when the broker has acknowledged the record
(acks=all) or fails with the delivery error. Delivery reports are served on the
event loop (see :class:`AsyncProducer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
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
    """confluent-kafka's producer, its delivery reports served on the event loop.

    While a loop has records awaiting acknowledgment, a task on that loop polls librdkafka
    every millisecond and settles the requests' futures directly: no delivery thread, so no
    thread hand-off (and GIL contention) per acknowledgment. The task ends when nothing is
    outstanding, so an idle producer costs nothing.

    Rebuilds its librdkafka producer after a fatal error (librdkafka's rule: a producer that
    raised a fatal error, e.g. fenced after an idempotence epoch problem, is unusable).
    """

    POLL_INTERVAL_S = 0.001

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
        self._outstanding: dict[asyncio.AbstractEventLoop, int] = {}
        self._pollers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._closed = False

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal.set()

    def _rebuild_if_fatal(self) -> None:
        if self._fatal.is_set():
            self._fatal.clear()
            broken, self._producer = self._producer, Producer(self._config)
            broken.purge()
            log.warning("kafka_producer_rebuilt_after_fatal_error")

    async def _serve_deliveries(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._outstanding.get(loop) and not self._closed:
                self._producer.poll(0)
                await asyncio.sleep(self.POLL_INTERVAL_S)
        finally:
            self._pollers.pop(loop, None)

    def _track(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self._outstanding[loop] = self._outstanding.get(loop, 0) + 1
        future.add_done_callback(lambda _f: self._untrack(loop))
        if loop not in self._pollers:
            self._pollers[loop] = loop.create_task(self._serve_deliveries(loop), name="kafka-deliveries")

    def _untrack(self, loop: asyncio.AbstractEventLoop) -> None:
        left = self._outstanding.get(loop, 1) - 1
        if left:
            self._outstanding[loop] = left
        else:
            self._outstanding.pop(loop, None)

    def produce_all(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> asyncio.Future[None]:
        """Queue ``(topic, key, value)`` records; the future resolves once the broker acknowledged
        all of them, or fails with the first delivery error.

        One future per request, not per record: the delivery report counts acknowledgments and
        settles the future once.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not records:
            future.set_result(None)
            return future
        acknowledgment = _Acknowledgment(loop, future, len(records), self._fatal)
        self._rebuild_if_fatal()
        produce = self._producer.produce
        try:
            for topic, key, value in records:
                produce(topic, value=value, key=key, on_delivery=acknowledgment)
        except (BufferError, KafkaException) as exc:
            acknowledgment.settled = True
            future.set_exception(DeliveryFailed(f"could not queue the record: {exc}"))
            return future
        self._track(loop, future)
        return future

    def produce(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        """Queue one record; the returned future resolves on the broker's acknowledgment."""
        return self.produce_all([(topic, key, value)])

    def queue_length(self) -> int:
        """Records waiting for delivery (librdkafka's queue)."""
        return len(self._producer)

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether the broker answers a metadata request. Also serves librdkafka's pending
        reports (errors, logs), which an idle producer otherwise leaves queued between requests."""
        self._producer.poll(0)
        try:
            metadata = self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is in flight (serving its delivery reports here); returns records left undelivered."""
        self._closed = True
        return self._producer.flush(timeout_s)


class _Acknowledgment:
    """The delivery report callback of one request's records."""

    __slots__ = ("fatal", "future", "loop", "pending", "settled")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None], pending: int, fatal: threading.Event
    ) -> None:
        self.loop, self.future, self.pending, self.fatal = loop, future, pending, fatal
        self.settled = False

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None and (err.fatal() or err.code() in _UNUSABLE):
            self.fatal.set()
        if self.settled:
            return
        if err is None:
            self.pending -= 1
            if self.pending:
                return
        self.settled = True
        error = None if err is None else DeliveryFailed(err.str())
        if _running_loop() is self.loop:
            _settle(self.future, error)
            return
        # Served from elsewhere: another loop's poller, or close() flushing after the loop ended.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_settle, self.future, error)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(future: asyncio.Future[None], error: DeliveryFailed | None) -> None:
    if future.done():
        return  # the request gave up (timeout) and cancelled it
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
