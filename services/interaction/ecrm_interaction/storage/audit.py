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


def recent(session: Session, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` entries, newest first."""
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.at.desc()).limit(limit)))


def of_entity(session: Session, entity: str, entity_id: str, limit: int = 50) -> list[AuditEntry]:
    """The newest ``limit`` entries about one thing (a rule's history), newest first."""
    query = select(AuditEntry).where(AuditEntry.entity == entity, AuditEntry.entity_id == entity_id)
    return list(session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id).limit(limit)))
