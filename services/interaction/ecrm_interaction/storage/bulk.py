"""What the set-based repositories share: the dialect's ``INSERT … ON CONFLICT`` and chunked ``IN`` lists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import ColumnElement, Select, Table, any_, bindparam, func, literal_column, select
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


def among(session: Session, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (values)`` as one bound parameter, so the statement's text is the same whatever
    the number of values (cached by SQLAlchemy and the driver, no per-value rendering):
    ``= ANY(:array)`` on PostgreSQL, ``IN (SELECT value FROM json_each(:json))`` on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(
            ColumnElement[bool], column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
        )
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(None, orjson.dumps(list(values)).decode()))
    )
    return cast(ColumnElement[bool], column.in_(listed.scalar_subquery()))


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


def unnest_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
) -> Any:
    """PostgreSQL: ``INSERT INTO table (columns) SELECT * FROM unnest(:arrays…) <tail>``, one
    statement with one array parameter per column whatever the number of rows (its text, and so
    its parsing, the same for every batch; an executemany or a multi-row ``VALUES`` is not). The
    values go through the columns' bind processors as SQLAlchemy would; ``tail`` is the
    ``ON CONFLICT …`` / ``RETURNING …`` clause. Returns the driver's result."""
    connection = session.connection()
    dialect = connection.dialect
    arrays, casts = [], []
    for index, name in enumerate(columns):
        kind = table.c[name].type
        process = kind.bind_processor(dialect)
        values = [row[index] for row in rows]
        arrays.append([process(v) for v in values] if process is not None else values)
        casts.append(f"%b::{kind.compile(dialect=dialect)}[]")  # binary: no per-element text escaping
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({', '.join(casts)}) {tail}"
    return connection.exec_driver_sql(sql, tuple(arrays))
