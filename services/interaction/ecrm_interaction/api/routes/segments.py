"""Segment definitions, published on the definitions topic for the aggregators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as FastApiPath
from fastapi.responses import Response

from ecrm_interaction.api.deps import Marketer, SessionDep, Viewer
from ecrm_interaction.api.views import SegmentView
from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.storage import audit
from ecrm_schemas.segments import SegmentDefinition, explain
from ecrm_schemas.topics import SEGMENT_DEFINITIONS

SegmentPath = Annotated[str, FastApiPath(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def router(dispatcher: Dispatcher | None, definitions: SegmentDefinitions) -> APIRouter:
    """``definitions``: the definitions topic as followed; ``dispatcher``'s producer publishes (503 without)."""
    routes = APIRouter(tags=["segments"])

    def publish(key: str, value: bytes) -> None:
        if dispatcher is None or dispatcher.producer is None:
            raise HTTPException(503, "kafka_unavailable")
        dispatcher.producer.produce(SEGMENT_DEFINITIONS.name, value, key=key.encode())
        dispatcher.producer.flush_or_raise(10)

    @routes.get("/v1/segments")
    async def list_segments(_who: Viewer) -> list[SegmentView]:
        """Every segment definition in force (the definitions topic, whoever published them)."""
        return [SegmentView.of(d) for d in definitions.all()]

    @routes.get("/v1/segments/{segment_id}")
    async def get_segment(segment_id: SegmentPath, _who: Viewer) -> SegmentView:
        definition = definitions.get(segment_id)
        if definition is None:
            raise HTTPException(404, "segment_not_found")
        return SegmentView.of(definition)

    @routes.put("/v1/segments/{segment_id}")
    def put_segment(
        segment_id: SegmentPath, definition: SegmentDefinition, who: Marketer, session: SessionDep
    ) -> SegmentDefinition:
        """Define or redefine a segment: running aggregators pick it up without a restart and
        report who enters and leaves it (rules can trigger on that).

        The definition is validated before it is published, as ``ecrm segments put`` does
        (:func:`ecrm_schemas.segments.parse_definition`): every ``trait`` must be a field the
        profile has and every value of that field's kind, else 422 naming the field and rule."""
        if definition.id != segment_id:
            raise HTTPException(422, "the segment's id must be the one in the path")
        publish(segment_id, definition.encode())
        definitions.put(definition)
        detail = {"name": definition.name, "condition": explain(definition.condition)}
        audit.record(session, who.name, "upsert", "segment", segment_id, detail)
        return definition

    @routes.delete("/v1/segments/{segment_id}", status_code=204)
    def delete_segment(segment_id: SegmentPath, who: Marketer, session: SessionDep) -> Response:
        publish(segment_id, b"")
        definitions.delete(segment_id)
        audit.record(session, who.name, "delete", "segment", segment_id, {})
        return Response(status_code=204)

    return routes
