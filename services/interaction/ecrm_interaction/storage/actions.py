"""The actions aggregate as the dispatcher and the outbox relay see it: claim a batch, finish
a batch, report a batch.

Functions take the caller's session and never commit: the dispatcher (or the relay) owns the
transaction. Each call is one statement whatever the batch's size (an ``executemany`` for
the per-row outcomes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from ecrm_interaction.storage.models import Action
from ecrm_schemas.actions import FINAL, OPEN, ActionStatus

ACTIONS: Table = Action.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Finished:
    """An action carried out or given up: its final status (the lease is released)."""

    id: str
    status: ActionStatus
    reason: str
    done_at: datetime
    attempts: int
    dedup_key: str
    """The action's key, or its released form when it reached no one (see
    :func:`ecrm_interaction.engine.planning.releases_once`)."""
    recipient: str | None = None
    """None keeps what the row has."""
    subject: str | None = None
    """None keeps what the row has."""


@dataclass(frozen=True, slots=True)
class Rescheduled:
    """An action to try again at ``due_at`` (a retry, quiet hours, a profile not caught up yet)."""

    id: str
    status: ActionStatus
    due_at: datetime
    attempts: int
    reason: str | None
    last_error: str | None


def _lease_free(now: datetime):  # type: ignore[no-untyped-def]
    return or_(Action.lease_until.is_(None), Action.lease_until < now)


def claim_due(session: Session, now: datetime, limit: int, lease: timedelta) -> list[Action]:
    """Lease up to ``limit`` due actions (pending, waits that ran out, deferred messages whose
    time came), oldest due first, in one statement; another dispatcher skips them until the
    lease ends (PostgreSQL: rows another claim holds are skipped, not waited for)."""
    due = (
        select(Action.id)
        .where(Action.status.in_(OPEN), Action.due_at <= now, _lease_free(now))
        .order_by(Action.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claim = (
        update(Action)
        .where(Action.id.in_(due.scalar_subquery()), _lease_free(now))
        .values(lease_until=now + lease)
        .returning(Action)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(claim).all(), key=lambda a: (a.due_at, a.id))


_FINISH = (
    update(ACTIONS)
    .where(ACTIONS.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        done_at=bindparam("b_done_at"),
        attempts=bindparam("b_attempts"),
        dedup_key=bindparam("b_dedup_key"),
        recipient=func.coalesce(bindparam("b_recipient"), ACTIONS.c.recipient),
        subject=func.coalesce(bindparam("b_subject"), ACTIONS.c.subject),
        lease_until=None,
    )
)
_RESCHEDULE = (
    update(ACTIONS)
    .where(ACTIONS.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        due_at=bindparam("b_due_at"),
        attempts=bindparam("b_attempts"),
        reason=bindparam("b_reason"),
        last_error=bindparam("b_last_error"),
        lease_until=None,
    )
)


def finish(session: Session, finished: Sequence[Finished], rescheduled: Sequence[Rescheduled]) -> None:
    """Record a batch's outcomes and release their leases: one statement per kind of outcome."""
    if finished:
        session.execute(
            _FINISH,
            [
                {
                    "b_id": f.id, "b_status": f.status.value, "b_reason": f.reason[:300], "b_done_at": f.done_at,
                    "b_attempts": f.attempts, "b_dedup_key": f.dedup_key,
                    "b_recipient": f.recipient, "b_subject": f.subject,
                }
                for f in finished
            ],
        )  # fmt: skip
    if rescheduled:
        session.execute(
            _RESCHEDULE,
            [
                {
                    "b_id": r.id, "b_status": r.status.value, "b_due_at": r.due_at, "b_attempts": r.attempts,
                    "b_reason": r.reason, "b_last_error": r.last_error,
                }
                for r in rescheduled
            ],
        )  # fmt: skip


def unpublished(session: Session, limit: int = 500) -> list[Action]:
    """Actions whose current final status was not reported yet, oldest change first."""
    query = (
        select(Action)
        .where(Action.status.in_(FINAL), or_(Action.published.is_(None), Action.published != Action.status))
        .order_by(Action.updated_at)
        .limit(limit)
    )
    return list(session.scalars(query))


_MARK_PUBLISHED = update(ACTIONS).where(ACTIONS.c.id == bindparam("b_id")).values(published=bindparam("b_status"))


def mark_published(session: Session, published: Iterable[tuple[str, str]]) -> None:
    """Record which status of each action was reported (one statement for the batch)."""
    rows = [{"b_id": action_id, "b_status": status} for action_id, status in published]
    if rows:
        session.execute(_MARK_PUBLISHED, rows)


def queue_sizes(session: Session) -> dict[ActionStatus, int]:
    """How many actions wait in each open status."""
    rows = session.execute(
        select(Action.status, func.count()).where(Action.status.in_(OPEN)).group_by(Action.status)
    ).all()
    return {ActionStatus(status): count for status, count in rows}
