"""JSON Schema for external producers, generated from the models (never edited by hand).

``python -m ecrm_schemas jsonschema`` writes them to ``schemas/jsonschema/``; a drift
test fails when the committed files no longer match the models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ecrm_schemas.catalog import CATALOG
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import EVENT_ADAPTER
from ecrm_schemas.profile import ProfileChanged
from ecrm_schemas.segments import SegmentDefinition, SegmentMembershipChanged

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "jsonschema"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def build_schemas() -> dict[str, dict[str, Any]]:
    """Every published schema, by relative file name."""
    schemas: dict[str, dict[str, Any]] = {
        "event.schema.json": EVENT_ADAPTER.json_schema(),
        "profile-changed.schema.json": ProfileChanged.model_json_schema(),
        "dead-letter.schema.json": DeadLetter.model_json_schema(),
        "segment-definition.schema.json": SegmentDefinition.model_json_schema(),
        "segment-membership-changed.schema.json": SegmentMembershipChanged.model_json_schema(),
    }
    for name, entry in sorted(CATALOG.items()):
        schema = entry.properties.model_json_schema()
        schema["title"] = f"{name} properties"
        schema["description"] = f"{entry.description} (source: {entry.source.value})"
        schemas[f"track/{_slug(name)}.properties.schema.json"] = schema
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema under ``directory``; returns the paths written."""
    written = []
    for name, schema in build_schemas().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))
        written.append(path)
    return written
