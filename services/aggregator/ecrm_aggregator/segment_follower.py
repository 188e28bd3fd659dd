"""Follows the compacted segment-definitions topic into a :class:`SegmentRegistry`.

A plain consumer without a group reads the whole topic from the start at every boot and
then keeps up, so a new, changed or deleted definition reaches the worker within about a
second, without a restart.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_schemas.segments import SegmentDefinition
from ecrm_schemas.topics import SEGMENT_DEFINITIONS

log = structlog.get_logger()


class SegmentFollower(threading.Thread):
    def __init__(self, kafka_config: dict[str, Any], registry: SegmentRegistry) -> None:
        super().__init__(name="segment-definitions", daemon=True)
        self.registry = registry
        self._stop_event = threading.Event()
        self._consumer = Consumer(
            {**kafka_config, "group.id": "unused", "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )

    def run(self) -> None:
        partitions = [TopicPartition(SEGMENT_DEFINITIONS.name, p, OFFSET_BEGINNING)
                      for p in range(SEGMENT_DEFINITIONS.partitions)]  # fmt: skip
        self._consumer.assign(partitions)
        try:
            while not self._stop_event.is_set():
                message = self._consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    log.warning("segment_definitions_read_failed", error=str(message.error()))
                    continue
                self.apply(message.key(), message.value())
        except KafkaException as exc:
            log.error("segment_definitions_follower_stopped", error=str(exc))
        finally:
            self._consumer.close()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic: a definition, or a deletion (empty value)."""
        if not value:
            if key:
                self.registry.delete(key.decode())
            return
        try:
            self.registry.put(SegmentDefinition.model_validate_json(value))
        except ValidationError as exc:
            log.warning("segment_definition_invalid", segment=(key or b"").decode(errors="replace"),
                        errors=exc.error_count())  # fmt: skip

    def stop(self) -> None:
        self._stop_event.set()
