"""The actions aggregate as the dispatcher and the outbox relay see it: claim a batch, finish
a batch, report a batch.

Functions take the caller's session and never commit: the dispatcher (or the relay) owns the
transaction. Each call is one statement whatever the batch's size (an ``executemany`` for
the per-row outcomes).

The actions the intake plans and cancels, set-based (claiming, finishing and publishing them
belong to the delivery side). Every function takes the caller's session.

Actions and skipped decisions as the API reads them: what rules planned, with outcome and
reason. (Planned by the intake, claimed and finished by the dispatcher.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from ecrm_interaction.engine.planning import PlannedAction, released_key, releases_once
from ecrm_interaction.storage.bulk import among, chunks, table_of, unnest_insert, upsert
from ecrm_interaction.storage.models import Action, SkippedDecision
from ecrm_interaction.storage.store import aware
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


NOT_ACTED = ("cancelled", "suppressed")
"""Statuses that do not count as the rule having acted (its cooldown)."""


@dataclass(slots=True)
class OpenAction:
    """An action not carried out yet (stored, or planned in this batch), as the intake sees it."""

    id: str
    dedup_key: str
    rule_id: str | None
    customer_id: str
    cause: str
    status: str
    payload: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewAction:
    id: str
    dedup_key: str
    rule_id: str
    customer_id: str
    kind: str
    category: str
    cause: str
    status: str
    due_at: datetime
    payload: str
    reason: str | None
    done_at: datetime | None
    created_at: datetime


def new_action(planned: PlannedAction, now: datetime, payload: str | None = None) -> NewAction:
    """The row of a planned action, created ``now`` (``payload``: its JSON when already encoded)."""
    encoded = payload if payload is not None else orjson.dumps(planned.payload, default=str).decode()
    p = planned
    return NewAction(str(uuid.uuid4()), p.dedup_key, p.rule_id, p.customer_id, p.kind, p.category, p.cause,
                     p.status, p.due_at, encoded, None, None, now)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClosedAction:
    """A stored open action given its final status."""

    id: str
    status: str
    reason: str
    done_at: datetime
    dedup_key: str
    release_lease: bool
    """True: the lease is cleared too (a cancellation by merge); False: only the status changes
    (a wait cancelled by an event)."""


@dataclass(frozen=True, slots=True)
class Skip:
    rule_id: str
    customer_id: str
    reason: str
    detail: str
    cause: str
    at: datetime


def read_open(session: Session, customer_ids: Iterable[str]) -> list[OpenAction]:
    """The actions of these customers not carried out yet, oldest first."""
    c, found = table_of(Action).c, []
    for part in chunks(sorted(set(customer_ids))):
        query = select(c.id, c.dedup_key, c.rule_id, c.customer_id, c.cause, c.status, c.payload, c.created_at)
        query = query.where(among(session, c.customer_id, part), c.status.in_(OPEN)).order_by(c.created_at, c.id)
        found += [OpenAction(*row) for row in session.execute(query)]
    return found


def read_last_acted(session: Session, customer_ids: Iterable[str]) -> dict[tuple[str, str], datetime]:
    """(rule id, customer id) → when the rule last planned something for the customer that was
    carried out (open actions are left out: :func:`read_open` gives them)."""
    c, found = table_of(Action).c, {}
    for part in chunks(sorted(set(customer_ids))):
        query = (
            select(c.rule_id, c.customer_id, func.max(c.created_at))
            .where(among(session, c.customer_id, part), c.status.not_in(NOT_ACTED + OPEN), c.rule_id.is_not(None))
            .group_by(c.rule_id, c.customer_id)
        )
        found.update({(rule_id, customer_id): at for rule_id, customer_id, at in session.execute(query) if at})
    return found


def read_recipients(session: Session, action_ids: Iterable[str]) -> dict[str, str]:
    """Email action id → the address it was sent to."""
    c, found = table_of(Action).c, {}
    for part in chunks(sorted(set(action_ids))):
        query = select(c.id, c.recipient).where(among(session, c.id, part), c.kind == "email", c.recipient.is_not(None))
        found.update(dict(session.execute(query).tuples().all()))
    return found


def existing_keys(session: Session, dedup_keys: Iterable[str]) -> set[str]:
    """Which of these dedup keys stored actions hold."""
    c, found = table_of(Action).c, set[str]()
    for part in chunks(sorted(set(dedup_keys))):
        found.update(session.scalars(select(c.dedup_key).where(among(session, c.dedup_key, part))))
    return found


_ACTION_COLUMNS = ("id", "dedup_key", "rule_id", "customer_id", "kind", "category", "cause", "status", "due_at",
                   "payload", "reason", "done_at", "attempts", "created_at", "updated_at")  # fmt: skip


def insert_actions(session: Session, rows: Iterable[NewAction]) -> int:
    """Insert the actions (one whose dedup key is taken is left out); how many were new."""
    rows = list(rows)
    if rows and session.get_bind().dialect.name == "postgresql":
        tuples = [
            (r.id, r.dedup_key, r.rule_id, r.customer_id, r.kind, r.category, r.cause, r.status, r.due_at, r.payload,
             r.reason, r.done_at, 0, r.created_at, r.created_at)
            for r in rows
        ]  # fmt: skip
        tail = "ON CONFLICT DO NOTHING RETURNING id"
        return len(unnest_insert(session, ACTIONS, _ACTION_COLUMNS, tuples, tail).all())
    values = [
        {"id": r.id, "dedup_key": r.dedup_key, "rule_id": r.rule_id, "customer_id": r.customer_id, "kind": r.kind,
         "category": r.category, "cause": r.cause, "status": r.status, "due_at": r.due_at, "payload": r.payload,
         "reason": r.reason, "done_at": r.done_at, "attempts": 0, "created_at": r.created_at,
         "updated_at": r.created_at}
        for r in rows
    ]  # fmt: skip
    if not values:
        return 0
    table = table_of(Action)
    statement = upsert(session, table).on_conflict_do_nothing().returning(table.c.id)
    return len(session.execute(statement, values).all())


def close_actions(session: Session, rows: Iterable[ClosedAction]) -> None:
    """Give stored open actions their final status."""
    table = table_of(Action)
    leased = [r for r in rows if r.release_lease]
    kept = [r for r in rows if not r.release_lease]
    if leased:
        statement = update(table).where(table.c.id == bindparam("key"))
        statement = statement.values(status=bindparam("s"), reason=bindparam("r"), done_at=bindparam("at"),
                                     dedup_key=bindparam("k"), lease_until=None)  # fmt: skip
        session.execute(
            statement,
            [{"key": r.id, "s": r.status, "r": r.reason[:300], "at": r.done_at, "k": r.dedup_key} for r in leased],
        )
    if kept:
        statement = update(table).where(table.c.id == bindparam("key"))
        statement = statement.values(status=bindparam("s"), reason=bindparam("r"), done_at=bindparam("at"))
        session.execute(statement, [{"key": r.id, "s": r.status, "r": r.reason, "at": r.done_at} for r in kept])


def record_skips(session: Session, skips: Iterable[Skip]) -> None:
    """Record rules that fired and did nothing: one row per rule, customer and reason, its count
    raised by each new cause (not by a redelivery), in the order given."""

    table = table_of(SkippedDecision)
    values = [
        {"id": str(uuid.uuid4()), "rule_id": s.rule_id, "customer_id": s.customer_id, "reason": s.reason,
         "detail": s.detail[:300], "cause": s.cause[:300], "count": 1, "first_at": s.at, "last_at": s.at}
        for s in skips
    ]  # fmt: skip
    if not values:
        return
    statement = upsert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.rule_id, table.c.customer_id, table.c.reason],
        set_={
            "count": table.c.count + 1,
            "cause": statement.excluded.cause,
            "detail": statement.excluded.detail,
            "last_at": statement.excluded.last_at,
        },
        where=table.c.cause != statement.excluded.cause,
    )
    # executemany without RETURNING runs row by row (a pipeline on psycopg): the same rule,
    # customer and reason twice in one batch counts twice, as one after the other would.
    session.execute(statement, values)


def recent(
    session: Session,
    customer_id: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[Action]:
    """Actions, newest first, optionally of one customer, kind or status."""
    query = select(Action).order_by(Action.created_at.desc()).limit(limit)
    for column, value in ((Action.customer_id, customer_id), (Action.kind, kind), (Action.status, status)):
        if value is not None:
            query = query.where(column == value)
    return list(session.scalars(query))


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """Which decisions to list; ``reason`` matches a prefix (``frequency_cap`` finds every cap)."""

    customer_id: str | None = None
    rule_id: str | None = None
    kind: str | None = None
    status: str | None = None
    reason: str | None = None
    limit: int = 100


def decisions(session: Session, wanted: DecisionFilter = DecisionFilter()) -> list[Action | SkippedDecision]:
    """Actions and skipped decisions, newest first (a skip by its latest time), filtered. Skips
    have no ``kind`` and the status ``skipped``."""
    found: list[Action | SkippedDecision] = []
    if wanted.status != "skipped":
        query = select(Action).order_by(Action.created_at.desc()).limit(wanted.limit)
        for column, value in (
            (Action.customer_id, wanted.customer_id), (Action.rule_id, wanted.rule_id),
            (Action.kind, wanted.kind), (Action.status, wanted.status),
        ):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        if wanted.reason is not None:
            query = query.where(Action.reason.startswith(wanted.reason, autoescape=True))
        found += session.scalars(query)
    if wanted.status in (None, "skipped") and wanted.kind is None:
        skips = select(SkippedDecision).order_by(SkippedDecision.last_at.desc()).limit(wanted.limit)
        for column, value in (
            (SkippedDecision.customer_id, wanted.customer_id), (SkippedDecision.rule_id, wanted.rule_id),
        ):  # fmt: skip
            if value is not None:
                skips = skips.where(column == value)
        if wanted.reason is not None:
            skips = skips.where(SkippedDecision.reason.startswith(wanted.reason, autoescape=True))
        found += session.scalars(skips)

    def newest(row: Action | SkippedDecision) -> datetime:
        at = row.last_at if isinstance(row, SkippedDecision) else row.created_at
        return aware(at) or datetime.min.replace(tzinfo=UTC)

    return sorted(found, key=newest, reverse=True)[: wanted.limit]


def close_action(row: Action, status: str, reason: str, now: datetime) -> None:
    """Give an action its final ``status``; one that reached no one frees its rule's
    ``once_per_customer`` place (see :func:`ecrm_interaction.engine.planning.releases_once`)."""
    row.status, row.reason, row.done_at, row.lease_until = status, reason[:300], now, None
    if releases_once(row.payload, status, reason):
        row.dedup_key = released_key(row.dedup_key, row.id)


def actions_by_id(session: Session, ids: Sequence[str]) -> list[Action]:
    """These actions (those that exist), in no particular order."""
    return list(session.scalars(select(Action).where(Action.id.in_(list(ids)))))
