"""The request bodies in the OpenAPI document, derived from the shared event models.

The routes read their bodies themselves (bounded, gzip-aware, write key possibly inside),
so FastAPI cannot infer the bodies; this module describes them. The shapes come from
``ecrm_schemas`` — nothing is redefined here — loosened where the server fills a field:
``messageId`` and ``timestamp`` are optional, ``receivedAt`` is the server's, and on a
single-event route ``type`` is implied by the path.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from ecrm_schemas.events import (
    AliasEvent,
    GroupEvent,
    IdentifyEvent,
    PageEvent,
    ScreenEvent,
    TrackEvent,
)

COMPONENTS = "#/components/schemas/{model}"
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "track": TrackEvent,
    "identify": IdentifyEvent,
    "page": PageEvent,
    "screen": ScreenEvent,
    "group": GroupEvent,
    "alias": AliasEvent,
}
SERVER_FIELDS = ("receivedAt",)
CLIENT_OPTIONAL = ("messageId", "timestamp")
WRITE_KEY = {"type": "string", "description": "The write key, when not sent in the Authorization header."}


def _inbound(model: type[BaseModel], *, type_implied: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(ref_template=COMPONENTS)
    defs = schema.pop("$defs", {})
    for name in SERVER_FIELDS:
        schema["properties"].pop(name, None)
    optional = set(SERVER_FIELDS) | set(CLIENT_OPTIONAL) | ({"type"} if type_implied else set())
    schema["required"] = [f for f in schema.get("required", []) if f not in optional]
    if "userId" not in schema["required"]:
        schema["anyOf"] = [{"required": ["userId"]}, {"required": ["anonymousId"]}]
    return schema, defs


def event_body_name(event_type: str, *, in_batch: bool = False) -> str:
    return f"{event_type.capitalize()}{'InBatch' if in_batch else 'Body'}"


def request_schemas() -> dict[str, Any]:
    """Component schemas for every request body the collector documents."""
    components: dict[str, Any] = {}
    for event_type, model in EVENT_MODELS.items():
        single, defs = _inbound(model, type_implied=True)
        single["properties"]["writeKey"] = WRITE_KEY
        components[event_body_name(event_type)] = single
        components[event_body_name(event_type, in_batch=True)], _ = _inbound(model, type_implied=False)
        components.update(defs)
    batch_items = [{"$ref": COMPONENTS.format(model=event_body_name(t, in_batch=True))} for t in EVENT_MODELS]
    components["BatchBody"] = {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "items": {"oneOf": batch_items},
            },
            "context": {"type": "object", "description": "Defaults for every event's context."},
            "integrations": {"type": "object"},
            "sentAt": {"type": "string", "format": "date-time"},
            "writeKey": WRITE_KEY,
        },
    }
    return components


def json_body(component: str, description: str = "") -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is ``component``."""
    schema = {"$ref": COMPONENTS.format(model=component)}
    return {
        "requestBody": {
            "required": True,
            "description": description
            or "JSON, optionally gzip-compressed (`Content-Encoding: gzip`); also accepted as `text/plain`, "
            "as analytics.js sends it.",
            "content": {"application/json": {"schema": schema}},
        }
    }


def with_request_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The generated OpenAPI document with the request components added."""
    document = copy.deepcopy(document)
    document.setdefault("components", {}).setdefault("schemas", {}).update(request_schemas())
    return document
