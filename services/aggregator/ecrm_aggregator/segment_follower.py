"""Follows the compacted segment-definitions topic into a :class:`SegmentRegistry`.

A new, changed or deleted definition reaches the worker within about a second, without a
restart (see :mod:`ecrm_schemas.topic_follower`).

A definition that does not validate (:func:`ecrm_schemas.segments.parse_definition`: written
to the topic without the API or the CLI, e.g. naming a field the profile does not have) or
that the membership query cannot be built from never reaches the registry: it is reported
(a ``segment_definition_rejected`` log line, the ``ecrm_aggregator_segment_definitions_rejected_total``
metric and a dead letter on ``ecrm.segment-definitions.dlq``) and the worker goes on folding
profiles and evaluating the other segments. A segment whose new version is refused keeps its
previous valid version while the worker runs; the topic replays the bad version at every
start, so a restarted worker has no such segment until it is fixed or deleted.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError

from ecrm_aggregator import metrics
from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.segment_sql import membership_query
from ecrm_schemas.segments import SegmentDefinition, definition_errors, parse_definition
from ecrm_schemas.topic_follower import TopicFollower
from ecrm_schemas.topics import SEGMENT_DEFINITIONS, SEGMENT_DEFINITIONS_DLQ
from ecrm_schemas.validation import FieldError

log = structlog.get_logger()


def definition_problems(value: bytes) -> tuple[SegmentDefinition | None, list[FieldError]]:
    """The definition in ``value``, or every reason the aggregator cannot use it (pure)."""
    try:
        definition = parse_definition(value)
    except ValidationError as exc:
        return None, [FieldError(**e) for e in definition_errors(exc)]
    try:  # what every batch will build from it; validation should have caught anything here
        membership_query("ecrm", [definition], customers=[])
    except ValueError as exc:
        return None, [FieldError("condition", "unsupported_condition", str(exc))]
    return definition, []


class SegmentFollower(TopicFollower):
    def __init__(
        self, kafka_config: dict[str, Any], registry: SegmentRegistry, producer: ReliableProducer | None = None
    ) -> None:
        """``producer``: where refused definitions are dead-lettered (None: only logged and counted)."""
        super().__init__(kafka_config, SEGMENT_DEFINITIONS, self.apply_definition)
        self.registry = registry
        self.producer = producer

    def apply_definition(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic: a definition, or a deletion (empty value)."""
        if not value:
            if key:
                self.registry.delete(key.decode())
            return
        definition, errors = definition_problems(value)
        if definition is not None:
            self.registry.put(definition)
            return
        self.reject(key, value, errors)

    def reject(self, key: bytes | None, value: bytes, errors: list[FieldError]) -> None:
        segment = (key or b"").decode(errors="replace")
        metrics.SEGMENT_DEFINITIONS_REJECTED.labels(errors[0].rule if errors else "invalid").inc()
        # Fields and rules only: a condition's values may hold personal data (traits.email = …).
        log.error("segment_definition_rejected", segment=segment, topic=SEGMENT_DEFINITIONS.name,
                  errors=[{"field": e.field, "rule": e.rule} for e in errors],
                  dead_letter_topic=SEGMENT_DEFINITIONS_DLQ.name)  # fmt: skip
        if self.producer is None:
            return
        letter = DeadLetter.build(topic=SEGMENT_DEFINITIONS.name, source="aggregator", reason="invalid_definition",
                                  errors=errors, payload=value)  # fmt: skip
        try:
            self.producer.produce(SEGMENT_DEFINITIONS_DLQ.name, letter.model_dump_json().encode(), key=key)
            self.producer.flush_or_raise(10)
        except Exception as exc:  # the report is logged already; folding must not stop for it
            log.warning("segment_definition_dead_letter_failed", segment=segment, error=type(exc).__name__)
