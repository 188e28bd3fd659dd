"""The event catalog as people browse it: each catalogued event, who may send it, its
properties (from its model in ``ecrm_schemas.catalog``, described by its JSON Schema), and how
many arrived in the last 7 days (ClickHouse ``events``; none when ClickHouse is not configured),
with the other event names that arrived meanwhile (custom events, identify, page…)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ecrm_interaction.api.deps import Viewer
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_schemas.catalog import CATALOG

ARRIVED = """
SELECT type, event, count() AS events, max(received_at) AS last_received_at
FROM {db}.events
WHERE received_at >= now64(3) - INTERVAL 7 DAY
GROUP BY type, event
ORDER BY events DESC
LIMIT 500
"""


class CatalogField(BaseModel):
    name: str
    type: str
    required: bool
    description: str


class CatalogEntry(BaseModel):
    name: str
    source: str
    description: str
    server_only: bool
    contact_state: bool
    properties: list[CatalogField]
    last_7_days: int | None
    """Events of this name that arrived in the last 7 days (None: ClickHouse not configured)."""


class OtherEvent(BaseModel):
    type: str
    event: str
    last_7_days: int


class Catalog(BaseModel):
    events: list[CatalogEntry]
    others: list[OtherEvent]
    """Events outside the catalog that arrived in the last 7 days (custom track events, identify…)."""
    counted: bool


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return "object"
    if "anyOf" in schema:
        kinds = [_type_of(s) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds)) or "any"
    if "enum" in schema:
        return " / ".join(str(v) for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    if kind == "string" and schema.get("format"):
        return f"string ({schema['format']})"
    return kind


@cache
def properties_of(model: type[BaseModel]) -> list[CatalogField]:
    """The model's properties as its JSON Schema describes them (the catalog is fixed: computed once)."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        CatalogField(
            name=name, type=_type_of(prop), required=name in required, description=str(prop.get("description", ""))
        )
        for name, prop in schema.get("properties", {}).items()
    ]


def router() -> APIRouter:
    routes = APIRouter(tags=["catalog"])

    @routes.get("/v1/catalog")
    async def catalog(_who: Viewer, request: Request) -> Catalog:
        warehouse: Warehouse | None = request.app.state.warehouse
        arrived: dict[tuple[str, str], int] = {}
        if warehouse is not None:
            arrived = {(r["type"], r["event"]): int(r["events"]) for r in await warehouse.query(ARRIVED)}
        counted = warehouse is not None
        events = [
            CatalogEntry(
                name=entry.name,
                source=entry.source.value,
                description=entry.description,
                server_only=entry.server_only,
                contact_state=entry.contact_state,
                properties=properties_of(entry.properties),
                last_7_days=arrived.get(("track", entry.name), 0) if counted else None,
            )
            for entry in CATALOG.values()
        ]
        others = [
            OtherEvent(type=kind, event=name, last_7_days=n)
            for (kind, name), n in arrived.items()
            if not (kind == "track" and name in CATALOG)
        ]
        return Catalog(events=events, others=others, counted=counted)

    return routes
