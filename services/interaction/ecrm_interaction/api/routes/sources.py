"""The collector's sources and their write keys: list, create (the key shown once), revoke. Admins only.

The registry is the collector's file (``COLLECTOR_SOURCES_FILE``, :mod:`ecrm_schemas.sources`),
shared with this service by path: the collector re-reads it within a second of a change, so a
source made here can send at once and a revoked key is refused at once. Only the key's SHA-256
is stored; the key itself is in the answer to its creation and nowhere else (not in the audit).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator

from ecrm_interaction.api.deps import Admin, SessionDep, SettingsDep
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import audit
from ecrm_schemas.sources import Source, SourceError, SourceRegistry, editing

ORIGIN = r"^(\*|https?://[^/\s]+)$"


class SourceIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: Literal["browser", "server"]
    allowed_origins: list[str] = Field(default_factory=list, max_length=50)
    """The origins a browser source may send from (``https://shop.example``, or ``*``)."""

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.match(ORIGIN, origin):
                raise ValueError(f"an origin is scheme://host[:port] or *, not {origin!r}")
        return origins


class SourceView(BaseModel):
    name: str
    kind: str
    allowed_origins: list[str]
    revoked: bool
    created_at: datetime

    @classmethod
    def of(cls, source: Source) -> SourceView:
        return cls(name=source.name, kind=source.kind, allowed_origins=list(source.allowed_origins),
                   revoked=source.revoked, created_at=datetime.fromisoformat(source.created_at))  # fmt: skip


class CreatedSource(SourceView):
    write_key: str = Field(description="The write key: shown in this answer only, never again.")


def _file(settings: InteractionSettings) -> Path:
    if settings.collector_sources_file is None:
        raise HTTPException(503, "sources_file_not_configured")
    return settings.collector_sources_file


def _add(path: Path, source: SourceIn) -> tuple[Source, str]:
    with editing(path) as registry:
        return registry.add(source.name, source.kind, tuple(source.allowed_origins))


def _revoke(path: Path, name: str) -> Source:
    with editing(path) as registry:
        return registry.revoke(name)


def router() -> APIRouter:
    routes = APIRouter(tags=["admin"])

    @routes.get("/v1/sources")
    async def list_sources(_who: Admin, settings: SettingsDep) -> list[SourceView]:
        """Every source, newest first (never a key)."""
        registry = await asyncio.to_thread(SourceRegistry.load, _file(settings))
        ordered = sorted(registry.sources.values(), key=lambda s: s.created_at, reverse=True)
        return [SourceView.of(s) for s in ordered]

    @routes.post("/v1/sources", status_code=201)
    async def create_source(source: SourceIn, who: Admin, settings: SettingsDep, session: SessionDep) -> CreatedSource:
        """409 ``source_exists`` when a source in force has this name."""
        try:
            created, key = await asyncio.to_thread(_add, _file(settings), source)
        except SourceError as exc:
            raise HTTPException(409, "source_exists") from exc
        detail = {"kind": created.kind, "allowed_origins": list(created.allowed_origins)}
        audit.record(session, who.name, "source.create", "source", created.name, detail)
        return CreatedSource(**SourceView.of(created).model_dump(), write_key=key)

    @routes.post("/v1/sources/{name}/revoke")
    async def revoke_source(name: str, who: Admin, settings: SettingsDep, session: SessionDep) -> SourceView:
        """The collector refuses the key within a second; 404 ``source_not_found``."""
        try:
            revoked = await asyncio.to_thread(_revoke, _file(settings), name)
        except SourceError as exc:
            raise HTTPException(404, "source_not_found") from exc
        audit.record(session, who.name, "source.revoke", "source", name, {"kind": revoked.kind})
        return SourceView.of(revoked)

    return routes
