"""The Segment HTTP Tracking API: ``/v1/track`` … ``/v1/alias`` and ``/v1/batch``.

Also under the one-letter paths analytics.js posts to (``/v1/t``, ``/v1/p``, …, ``/v1/b``
for batches) and RudderStack's beacon path (``/beacon/v1/batch?writeKey=…``), so their SDKs
work when pointed at the collector.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ecrm_collector.gateway import ApiError, Gateway, error_responses
from ecrm_collector.openapi import event_body_name, json_body
from ecrm_collector.plain_routes import plain
from ecrm_schemas.events import EVENT_TYPES
from ecrm_schemas.validation import FieldError

BATCH_DEFAULTS = ("context", "integrations", "sentAt")
INGEST_ERRORS = error_responses(400, 401, 403, 413, 415, 429, 503)


def json_response(body: Any) -> Response:
    """Responses are built directly (orjson), skipping FastAPI's response-model pass on the hot path."""
    return Response(orjson.dumps(body), media_type="application/json")


SUCCESS_BODY = orjson.dumps({"success": True})


class Accepted(BaseModel):
    success: bool


class Rejected(BaseModel):
    index: int
    errors: list[dict[str, str]]


class BatchAccepted(BaseModel):
    success: bool
    accepted: int
    """Events stored on Kafka."""
    rejected: list[Rejected]
    """Events refused (and dead-lettered with the reason), by their index in ``batch``."""


def router(gateway: Gateway) -> APIRouter:
    routes = APIRouter(tags=["ingest"])
    limits = gateway.settings

    def single_route(event_type: str) -> Any:
        @plain
        async def ingest_one(request: Request) -> Response:
            source, raw, size = await gateway.authenticated_json(request, limits.collector_max_event_bytes)
            plan = gateway.plan([raw], source, event_type=event_type, request_bytes=size)
            await gateway.deliver(plan)
            if plan.rejected:
                errors = [e.as_dict() for e in plan.rejected[0].errors]
                raise ApiError(400, "invalid_event", "the event is invalid", errors)
            return Response(SUCCESS_BODY, media_type="application/json")

        ingest_one.__name__ = f"ingest_{event_type}"
        ingest_one.__doc__ = (
            f"Accept one `{event_type}` event (Segment spec) and answer once Kafka has it. "
            "`messageId` and `timestamp` are set by the server when missing; `timestamp` is corrected "
            "for the client's clock with `sentAt`."
        )
        return ingest_one

    for event_type in EVENT_TYPES:
        handler = single_route(event_type)
        extra = json_body(event_body_name(event_type))
        routes.add_api_route(
            f"/v1/{event_type}",
            handler,
            methods=["POST"],
            response_model=Accepted,
            responses=INGEST_ERRORS,
            openapi_extra=extra,
        )
        routes.add_api_route(f"/v1/{event_type[0]}", handler, methods=["POST"], include_in_schema=False)

    @plain
    async def ingest_batch(request: Request) -> Response:
        """Accept many events at once. Valid events are stored; invalid ones are listed by index
        and go to the dead-letter topic with their reason. The batch's `context`, `integrations`
        and `sentAt` apply to every event that does not set its own."""
        source, body, size = await gateway.authenticated_json(request, limits.collector_max_batch_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            error = FieldError("batch", "list_type", "the body must be an object with a `batch` array")
            raise ApiError(400, "invalid_batch", error.message, [error.as_dict()])
        defaults = {k: body[k] for k in BATCH_DEFAULTS if k in body}
        plan = gateway.plan(body["batch"], source, batch_defaults=defaults, request_bytes=size)
        await gateway.deliver(plan)
        rejected = [{"index": r.index, "errors": [e.as_dict() for e in r.errors]} for r in plan.rejected]
        return json_response({"success": True, "accepted": len(plan.accepted), "rejected": rejected})

    routes.add_api_route(
        "/v1/batch",
        ingest_batch,
        methods=["POST"],
        response_model=BatchAccepted,
        responses=INGEST_ERRORS,
        openapi_extra=json_body("BatchBody"),
    )
    routes.add_api_route("/v1/b", ingest_batch, methods=["POST"], include_in_schema=False)
    routes.add_api_route("/beacon/v1/batch", ingest_batch, methods=["POST"], include_in_schema=False)
    return routes
