"""``POST /v1/import``: history (past orders, answers, identifies) that builds profiles and
traits without firing rules.

The body is a ``/v1/batch`` body. Only server sources may call it (a browser key is public);
every accepted event carries the backfill mark (:mod:`ecrm_schemas.backfill`), so the
aggregator folds it like any event and the interaction service triggers nothing on it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ecrm_collector.gateway import ApiError, Gateway, error_responses
from ecrm_collector.openapi import json_body
from ecrm_collector.routes.segment import BATCH_DEFAULTS, BatchAccepted, json_response
from ecrm_schemas.validation import FieldError


def router(gateway: Gateway) -> APIRouter:
    routes = APIRouter(tags=["ingest"])

    async def import_history(request: Request) -> Response:
        """Import past events (a `/v1/batch` body) with a **server** key: they are stored and
        folded into profiles, traits and segments like any event, but trigger no rule (no email,
        points, case or webhook). Send events with their original `timestamp`. Invalid events are
        listed by index and dead-lettered, as in `/v1/batch`."""
        source, body, size = await gateway.authenticated_json(request, gateway.settings.collector_max_batch_bytes)
        if source.kind != "server":
            raise ApiError(
                403,
                "server_key_required",
                "only a server source may import history",
                [FieldError("writeKey", "server_key_required", "use a server source's write key").as_dict()],
            )
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            error = FieldError("batch", "list_type", "the body must be an object with a `batch` array")
            raise ApiError(400, "invalid_batch", error.message, [error.as_dict()])
        defaults = {k: body[k] for k in BATCH_DEFAULTS if k in body}
        plan = gateway.plan(body["batch"], source, batch_defaults=defaults, request_bytes=size, backfill=True)
        await gateway.deliver(plan)
        rejected = [{"index": r.index, "errors": [e.as_dict() for e in r.errors]} for r in plan.rejected]
        return json_response({"success": True, "accepted": len(plan.accepted), "rejected": rejected})

    routes.add_api_route(
        "/v1/import",
        import_history,
        methods=["POST"],
        response_model=BatchAccepted,
        responses=error_responses(400, 401, 403, 413, 415, 429, 503),
        openapi_extra=json_body("BatchBody"),
    )
    return routes
