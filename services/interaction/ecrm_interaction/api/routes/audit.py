"""The audit log. Admins only."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query

from ecrm_interaction.api.deps import Admin, SessionDep
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage.store import aware


def router() -> APIRouter:
    routes = APIRouter(tags=["admin"])

    @routes.get("/v1/audit")
    def audit(
        _who: Admin,
        session: SessionDep,
        limit: int = 100,
        actor: str | None = None,
        entity: str | None = None,
        offset: int = Query(default=0, ge=0, le=1_000_000_000),
    ) -> list[dict[str, Any]]:
        """Who changed what, newest first; ``actor`` (a user's email or a token's name) and
        ``entity`` (``rule``, or ``rule:ID``) narrow it, ``offset`` pages on."""
        return [
            {
                "at": aware(r.at),
                "actor": r.actor,
                "action": r.action,
                "entity": r.entity,
                "entity_id": r.entity_id,
                "detail": orjson.loads(r.detail),
            }
            for r in audit_log.recent(session, min(max(limit, 1), 1000), actor=actor, entity=entity, offset=offset)
        ]

    return routes
