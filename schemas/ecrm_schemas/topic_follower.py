"""Follows a compacted topic from its start, record by record, in a background thread.

A plain consumer without a group (nothing is committed) reads the whole topic at every boot
and then keeps up, so what the topic holds reaches the service within about a second,
without a restart. Used for the segment definitions and the suppression list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from ecrm_schemas.settings import consumer_config
from ecrm_schemas.topics import Topic

log = structlog.get_logger()


class TopicFollower(threading.Thread):
    """Calls ``apply(key, value)`` for every record of ``topic``, from the first on.

    ``caught_up`` is set once the records that were on the topic when the follower started
    have been applied (or the topic was empty), so a service can wait for the whole list.
    """

    def __init__(
        self, kafka_config: dict[str, Any], topic: Topic, apply: Callable[[bytes | None, bytes | None], None]
    ) -> None:
        super().__init__(name=f"follow-{topic.name}", daemon=True)
        self.topic, self.apply = topic, apply
        self.caught_up = threading.Event()
        self._stop_event = threading.Event()
        self._consumer = Consumer(consumer_config(kafka_config))

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                try:
                    self._follow()
                except KafkaException as exc:  # e.g. the topic does not exist yet: try again
                    log.error("topic_follow_failed", topic=self.topic.name, error=str(exc))
                    self._stop_event.wait(5)
        finally:
            self._consumer.close()

    def _follow(self) -> None:
        partitions = [TopicPartition(self.topic.name, p, OFFSET_BEGINNING) for p in range(self.topic.partitions)]
        ends = self._end_offsets(partitions)
        self._consumer.assign(partitions)
        positions: dict[int, int] = {}
        while not self._stop_event.is_set():
            if not self.caught_up.is_set() and all(positions.get(p, 0) >= end for p, end in ends.items()):
                self.caught_up.set()
            message = self._consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                log.warning("topic_follow_read_failed", topic=self.topic.name, error=str(message.error()))
                continue
            self.apply(message.key(), message.value())
            positions[message.partition() or 0] = (message.offset() or 0) + 1

    def _end_offsets(self, partitions: list[TopicPartition]) -> dict[int, int]:
        ends = {}
        for tp in partitions:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            ends[tp.partition] = high if high > low else 0
        return ends

    def stop(self) -> None:
        self._stop_event.set()
