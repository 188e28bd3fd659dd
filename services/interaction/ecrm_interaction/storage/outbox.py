"""The event outbox: events written in the transaction of the change they report, published
by :mod:`ecrm_interaction.delivery.outbox_relay` once that change is committed.

Functions take the caller's session and never commit. The relay's reads of a batch are one
query each: the rows, the customers they name, the loyalty balances they report.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ecrm_interaction.storage.bulk import chunks, insert_ignore, table_of, unnest_insert, upsert
from ecrm_interaction.storage.models import Customer, OutboxEvent

_CHUNK = 1000
"""Ids per ``IN (…)`` (SQLite's parameter limit)."""


OutboxRow = tuple[str, str, str, dict[str, Any], datetime]
"""(name, customer id, message id, properties, at): one event to record."""

_COLUMNS = ("id", "customer_id", "name", "message_id", "properties", "created_at")


def _stored(event: OutboxRow) -> tuple[Any, ...]:
    """The outbox row of an event, in the order of ``_COLUMNS``."""
    name, customer_id, message_id, properties, at = event
    return (str(uuid.uuid4()), customer_id, name, message_id, orjson.dumps(properties, default=str).decode(), at)


def add_event(
    session: Session, name: str, customer_id: str, message_id: str, properties: dict[str, Any], at: datetime
) -> bool:
    """Record an event to publish once ``session`` commits (once per ``message_id``); whether it was new."""
    row = dict(zip(_COLUMNS, _stored((name, customer_id, message_id, properties, at)), strict=True))
    return insert_ignore(session, OutboxEvent, [row]) == 1


def add_events(session: Session, events: Sequence[OutboxRow]) -> None:
    """Record many events to publish once ``session`` commits (each once per message id): one
    statement whatever their number (``unnest`` on PostgreSQL)."""
    if not events:
        return
    rows = [_stored(event) for event in events]
    table = table_of(OutboxEvent)
    if session.get_bind().dialect.name == "postgresql":
        unnest_insert(session, table, _COLUMNS, rows, "ON CONFLICT DO NOTHING")
    else:
        values = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        session.execute(upsert(session, table).on_conflict_do_nothing(), values)


def unpublished_events(session: Session, limit: int = 500) -> list[OutboxEvent]:
    """The oldest events not published yet, in the order they were recorded."""
    query = select(OutboxEvent).where(OutboxEvent.published_at.is_(None))
    return list(session.scalars(query.order_by(OutboxEvent.created_at, OutboxEvent.id).limit(limit)))


def backlog(session: Session) -> tuple[int, datetime | None]:
    """How many events wait to be published, and when the oldest of them was recorded."""
    waiting = select(func.count(), func.min(OutboxEvent.created_at)).where(OutboxEvent.published_at.is_(None))
    count, oldest = session.execute(waiting).one()
    return int(count), oldest


def mark_events_published(session: Session, ids: Sequence[str], at: datetime) -> None:
    for chunk in chunks(ids, _CHUNK):
        session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(list(chunk))).values(published_at=at))


def stored_profiles(session: Session, customer_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored profile of each of these customers that has one (one query per thousand ids)."""
    ids = sorted(set(customer_ids))
    profiles: dict[str, dict[str, Any]] = {}
    for chunk in chunks(ids, _CHUNK):
        rows = session.execute(select(Customer.customer_id, Customer.profile).where(Customer.customer_id.in_(chunk)))
        profiles.update((customer_id, orjson.loads(profile)) for customer_id, profile in rows if profile)
    return profiles
