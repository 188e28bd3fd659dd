"""What the set-based repositories share: the dialect's ``INSERT … ON CONFLICT`` and chunked ``IN`` lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

T = TypeVar("T")
CHUNK = 5000
"""Values per ``IN`` list (SQLite allows 32,766 parameters, PostgreSQL 65,535)."""


def upsert(session: Session, table: Table) -> Any:
    """``INSERT`` of the session's dialect (PostgreSQL in production, SQLite embedded), which has
    ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def table_of(model: Any) -> Table:
    """A model's table, typed as one (``__table__`` is typed as any ``FromClause``)."""
    return cast(Table, model.__table__)


def insert_ignore(session: Session, model: Any, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping those whose unique keys exist; returns how many were new."""
    if not rows:
        return 0
    key = next(iter(model.__table__.primary_key.columns))
    statement = upsert(session, table_of(model)).values(rows).on_conflict_do_nothing().returning(key)
    return len(session.execute(statement).all())
