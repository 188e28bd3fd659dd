"""Support cases and their notes. Opening, changing and resolving a case is reported as an event
(``Case Opened``, ``Case Updated``, ``Case Resolved``) through the outbox, in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ecrm_interaction.engine.triggers import OWN_EVENTS
from ecrm_interaction.storage import audit, outbox
from ecrm_interaction.storage.bulk import insert_ignore
from ecrm_interaction.storage.models import Case, CaseNote
from ecrm_schemas.catalog import CatalogEvent


@dataclass(frozen=True, slots=True)
class CaseOpening:
    """A case to open: by an agent (no ``rule_id``, no ``dedup_key``) or by a rule (once per ``dedup_key``)."""

    customer_id: str
    subject: str
    priority: str
    sla: timedelta
    assignee: str | None = None
    rule_id: str | None = None
    dedup_key: str | None = None
    note: tuple[str, str] | None = None
    """(author, text) of its first note."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""A field of :class:`CaseChange` left as it is (``None`` is a value: no assignee)."""


@dataclass(frozen=True, slots=True)
class CaseChange:
    """What to change of a case; fields left :data:`UNSET` stay as they are."""

    status: str = UNSET
    priority: str = UNSET
    assignee: str | None = UNSET

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not UNSET}


def open_case(session: Session, opening: CaseOpening, now: datetime) -> str | None:
    """Open a case (once per ``dedup_key``) with its first note, and record its ``Case Opened``
    event; returns its id, or None when it already existed."""
    case_id = str(uuid.uuid4())
    row = {
        "id": case_id,
        "customer_id": opening.customer_id,
        "subject": opening.subject,
        "priority": opening.priority,
        "status": "open",
        "assignee": opening.assignee,
        "sla_due_at": now + opening.sla,
        "rule_id": opening.rule_id,
        "dedup_key": opening.dedup_key,
        "created_at": now,
        "updated_at": now,
    }
    if insert_ignore(session, Case, [row]) != 1:
        return None
    if opening.note is not None:
        author, text = opening.note
        session.add(CaseNote(id=str(uuid.uuid4()), case_id=case_id, author=author, text=text, created_at=now))
    _case_event(session, CatalogEvent.CASE_OPENED, row, f"{case_id}-opened", now)
    return case_id


def _case_event(session: Session, name: str, case: dict[str, Any], suffix: str, at: datetime) -> None:
    properties = {key: case[key] for key in ("subject", "priority", "status", "assignee", "rule_id")}
    properties = {"case_id": case["id"], **properties}
    outbox.add_event(session, name, case["customer_id"], f"{OWN_EVENTS}case-{suffix}", properties, at)


def by_dedup_key(session: Session, dedup_key: str) -> str | None:
    """The id of the case opened once for ``dedup_key``, if any."""
    return session.scalar(select(Case.id).where(Case.dedup_key == dedup_key))


def case(session: Session, case_id: str) -> tuple[Case, list[CaseNote]] | None:
    """The case and its notes, oldest first."""
    row = session.get(Case, case_id)
    if row is None:
        return None
    return row, case_notes(session, [case_id])[case_id]


def cases(session: Session, customer_id: str | None = None, status: str | None = None, limit: int = 100) -> list[Case]:
    """Cases, newest first, optionally of one customer or status."""
    query = select(Case).order_by(Case.created_at.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(Case.customer_id == customer_id)
    if status is not None:
        query = query.where(Case.status == status)
    return list(session.scalars(query))


def case_notes(session: Session, case_ids: Sequence[str]) -> dict[str, list[CaseNote]]:
    """The notes of these cases, oldest first (one query per thousand cases)."""
    notes: dict[str, list[CaseNote]] = {case_id: [] for case_id in case_ids}
    for start in range(0, len(case_ids), 1000):
        rows = session.scalars(
            select(CaseNote)
            .where(CaseNote.case_id.in_(list(case_ids[start : start + 1000])))
            .order_by(CaseNote.created_at, CaseNote.id)
        )
        for note in rows:
            notes[note.case_id].append(note)
    return notes


def update_case(session: Session, case_id: str, change: CaseChange, actor: str, now: datetime) -> Case | None:
    """Apply ``change`` (None when the case does not exist). A change that changes something is
    audited and reported (``Case Resolved`` when it resolves the case, else ``Case Updated``)."""
    row = session.get(Case, case_id)
    if row is None:
        return None
    changes = {k: v for k, v in change.given().items() if getattr(row, k) != v}
    if not changes:
        return row
    before = {k: getattr(row, k) for k in changes}
    for key, value in changes.items():
        setattr(row, key, value)
    if "status" in changes:
        row.resolved_at = now if row.status == "resolved" else None
    row.updated_at = now
    audit.record(session, actor, "update", "case", case_id, {"before": before, "after": changes})
    name = CatalogEvent.CASE_RESOLVED if changes.get("status") == "resolved" else CatalogEvent.CASE_UPDATED
    values = {column.key: getattr(row, column.key) for column in Case.__table__.columns}
    _case_event(session, name, values, f"{case_id}-{uuid.uuid4()}", now)
    return row


def add_note(session: Session, case_id: str, author: str, text: str, now: datetime) -> CaseNote | None:
    """Add a note (None when the case does not exist); audited."""
    if session.get(Case, case_id) is None:
        return None
    note = CaseNote(id=str(uuid.uuid4()), case_id=case_id, author=author, text=text, created_at=now)
    session.add(note)
    audit.record(session, author, "note", "case", case_id, {})
    return note


def claim_escalations(session: Session, now: datetime, limit: int = 100) -> list[Case]:
    """Unresolved cases past their SLA, not escalated yet: each marked escalated, once (a
    conditional update, so two replicas never claim the same case)."""
    due = session.scalars(
        select(Case.id)
        .where(Case.status != "resolved", Case.sla_due_at < now, Case.escalated_at.is_(None))
        .limit(limit)
    ).all()
    claimed = []
    for case_id in due:
        result = session.execute(
            update(Case).where(Case.id == case_id, Case.escalated_at.is_(None)).values(escalated_at=now)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(case_id)
    return list(session.scalars(select(Case).where(Case.id.in_(claimed))))


PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
"""The queue's order of priorities, most pressing first."""


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which cases the queue shows: ``statuses`` (any of), ``assignee`` (one person's), or only
    the ``unassigned`` ones, ``priority``; a page of ``limit`` from ``offset``."""

    statuses: tuple[str, ...] = ()
    assignee: str | None = None
    unassigned: bool = False
    priority: str | None = None
    customer_id: str | None = None
    limit: int = 100
    offset: int = 0


def queue(session: Session, wanted: QueueFilter, now: datetime, *, newest_first: bool = False) -> list[Case]:
    """Cases as an agent works them: the unresolved ones past their SLA first, then by priority
    (urgent first), then by SLA due time (the soonest first), the resolved ones last; or the newest first."""
    if newest_first:
        query = select(Case).order_by(Case.created_at.desc(), Case.id)
    else:
        overdue = sql_case((Case.status == "resolved", 2), (Case.sla_due_at < now, 0), else_=1)
        rank = sql_case(*((Case.priority == p, value) for p, value in PRIORITY_RANK.items()), else_=len(PRIORITY_RANK))
        query = select(Case).order_by(overdue, rank, Case.sla_due_at, Case.id)
    if wanted.statuses:
        query = query.where(Case.status.in_(wanted.statuses))
    if wanted.unassigned:
        query = query.where(Case.assignee.is_(None))
    elif wanted.assignee is not None:
        query = query.where(Case.assignee == wanted.assignee)
    if wanted.priority is not None:
        query = query.where(Case.priority == wanted.priority)
    if wanted.customer_id is not None:
        query = query.where(Case.customer_id == wanted.customer_id)
    return list(session.scalars(query.limit(wanted.limit).offset(wanted.offset)))


def summary(session: Session, now: datetime) -> dict[str, int]:
    """How many unresolved cases are open, pending, past their SLA, escalated and unassigned (one query)."""
    unresolved = Case.status != "resolved"

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(sql_case((condition, 1), else_=0)), 0)

    row = session.execute(
        select(
            count(Case.status == "open"),
            count(Case.status == "pending"),
            count(unresolved & (Case.sla_due_at < now)),
            count(unresolved & Case.escalated_at.is_not(None)),
            count(unresolved & Case.assignee.is_(None)),
        ).where(unresolved)
    ).one()
    return dict(zip(("open", "pending", "overdue", "escalated", "unassigned"), (int(v) for v in row), strict=True))
