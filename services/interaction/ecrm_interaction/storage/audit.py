"""The audit log: who changed what, when (rules, templates, tokens, cases, consent, suppressions,
privacy requests). Entries are written in the transaction of the change they describe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.storage.models import AuditEntry


def record(session: Session, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]) -> None:
    """Add an entry; it is kept when ``session`` commits."""
    session.add(
        AuditEntry(
            id=str(uuid.uuid4()),
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            detail=orjson.dumps(detail, default=str).decode(),
        )
    )


def recent(
    session: Session, limit: int = 100, *, actor: str | None = None, entity: str | None = None, offset: int = 0
) -> list[AuditEntry]:
    """The newest ``limit`` entries (after skipping ``offset``), newest first; only those of
    ``actor`` and of ``entity`` (an entity kind, or ``kind:id``) when given."""
    query = select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if entity:
        kind, _, entity_id = entity.partition(":")
        query = query.where(AuditEntry.entity == kind)
        if entity_id:
            query = query.where(AuditEntry.entity_id == entity_id)
    ordered = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(ordered))


def of_entity(session: Session, entity: str, entity_id: str, limit: int = 50) -> list[AuditEntry]:
    """The newest ``limit`` entries about one thing (a rule's history), newest first."""
    return recent(session, limit, entity=f"{entity}:{entity_id}")
