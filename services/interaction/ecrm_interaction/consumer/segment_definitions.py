"""The segment definitions in force, for ``GET /v1/segments``: the compacted definitions topic
followed from its start (what the aggregators evaluate, whoever published it: the API or
``ecrm segments put``), plus this process's own writes as soon as they are acknowledged."""

from __future__ import annotations

import threading
from typing import Any

import structlog
from pydantic import ValidationError

from ecrm_schemas.segments import SegmentDefinition, definition_errors, parse_definition
from ecrm_schemas.topic_follower import TopicFollower
from ecrm_schemas.topics import SEGMENT_DEFINITIONS

log = structlog.get_logger()


class SegmentDefinitions:
    """Definitions by id (thread-safe). Values that do not validate are left out (the
    aggregators refuse them too, and report them on ecrm.segment-definitions.dlq)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._definitions: dict[str, SegmentDefinition] = {}

    def put(self, definition: SegmentDefinition) -> None:
        with self._lock:
            self._definitions[definition.id] = definition

    def delete(self, segment_id: str) -> None:
        with self._lock:
            self._definitions.pop(segment_id, None)

    def get(self, segment_id: str) -> SegmentDefinition | None:
        with self._lock:
            return self._definitions.get(segment_id)

    def all(self) -> list[SegmentDefinition]:
        with self._lock:
            return sorted(self._definitions.values(), key=lambda d: d.id)

    def apply_record(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the definitions topic: a definition, or a deletion (empty value)."""
        if not value:
            if key:
                self.delete(key.decode())
            return
        try:
            self.put(parse_definition(value))
        except ValidationError as exc:
            log.warning("segment_definition_invalid", segment=(key or b"").decode(errors="replace"),
                        errors=[{"field": e["field"], "rule": e["rule"]} for e in definition_errors(exc)])  # fmt: skip


def follow_segment_definitions(kafka_config: dict[str, Any]) -> tuple[SegmentDefinitions, TopicFollower]:
    """Definitions kept up to date by a started follower."""
    definitions = SegmentDefinitions()
    follower = TopicFollower(kafka_config, SEGMENT_DEFINITIONS, definitions.apply_record)
    follower.start()
    return definitions, follower
