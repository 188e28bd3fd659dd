"""Report subscriptions: who receives which saved report or dashboard, and when next."""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecrm_interaction.storage import audit
from ecrm_interaction.storage.models import ReportSubscription


def list_subscriptions(
    session: Session, target: str | None = None, target_id: str | None = None
) -> list[ReportSubscription]:
    query = select(ReportSubscription).order_by(ReportSubscription.created_at, ReportSubscription.id)
    if target is not None:
        query = query.where(ReportSubscription.target == target, ReportSubscription.target_id == target_id)
    return list(session.scalars(query))


def get(session: Session, subscription_id: str) -> ReportSubscription | None:
    return session.get(ReportSubscription, subscription_id)


def add(session: Session, target: str, target_id: str, recipients: list[str], cadence: str, hour: int,
        next_due_at: datetime, actor: str) -> ReportSubscription:  # fmt: skip
    row = ReportSubscription(
        id=str(uuid.uuid4()), target=target, target_id=target_id, recipients=orjson.dumps(recipients).decode(),
        cadence=cadence, hour=hour, enabled=True, next_due_at=next_due_at, created_by=actor,
    )  # fmt: skip
    session.add(row)
    session.flush()
    audit.record(session, actor, "subscribe", target, target_id,
                 {"subscription": row.id, "recipients": len(recipients), "cadence": cadence})  # fmt: skip
    return row


def remove(session: Session, subscription_id: str, actor: str) -> bool:
    row = session.get(ReportSubscription, subscription_id)
    if row is None:
        return False
    session.delete(row)
    audit.record(session, actor, "unsubscribe", row.target, row.target_id, {"subscription": subscription_id})
    session.flush()
    return True


def due(session: Session, now: datetime) -> list[ReportSubscription]:
    return list(session.scalars(
        select(ReportSubscription).where(ReportSubscription.enabled.is_(True), ReportSubscription.next_due_at <= now)
        .order_by(ReportSubscription.next_due_at)
    ))  # fmt: skip


def claim(session: Session, subscription_id: str, expected_due: datetime, next_due_at: datetime) -> bool:
    """Move the subscription's next issue from ``expected_due`` to ``next_due_at``; False when
    another replica did it first (the issue at ``expected_due`` is theirs to send)."""
    moved = session.execute(
        update(ReportSubscription)
        .where(ReportSubscription.id == subscription_id, ReportSubscription.next_due_at == expected_due)
        .values(next_due_at=next_due_at)
    )
    return bool(moved.rowcount)  # type: ignore[attr-defined]


def record(session: Session, subscription_id: str, sent_at: datetime | None, error: str | None) -> None:
    values: dict[str, object] = {"last_error": error}
    if sent_at is not None:
        values["last_sent_at"] = sent_at
    session.execute(update(ReportSubscription).where(ReportSubscription.id == subscription_id).values(**values))
