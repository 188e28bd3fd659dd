"""Follows the compacted segment-definitions topic into a :class:`SegmentRegistry`.

A new, changed or deleted definition reaches the worker within about a second, without a
restart (see :mod:`ecrm_schemas.topic_follower`).
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError

from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_schemas.segments import SegmentDefinition
from ecrm_schemas.topic_follower import TopicFollower
from ecrm_schemas.topics import SEGMENT_DEFINITIONS

log = structlog.get_logger()


class SegmentFollower(TopicFollower):
    def __init__(self, kafka_config: dict[str, Any], registry: SegmentRegistry) -> None:
        super().__init__(kafka_config, SEGMENT_DEFINITIONS, self.apply_definition)
        self.registry = registry

    def apply_definition(self, key: bytes | None, value: bytes | None) -> None:
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
