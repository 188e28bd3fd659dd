"""The interaction service's relational shell: engine, migrations, and the queries it needs.

Every write that must happen at most once goes through a unique key (actions, ledger
entries, rewards, cases: ``dedup_key``), inserted with "on conflict do nothing", so a
redelivered Kafka batch or a second replica changes nothing. Work is claimed with a lease
(a conditional update), so two dispatchers never carry out the same action at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage.models import (
    Action,
    AuditEntry,
    Case,
    CaseNote,
    Consent,
    Customer,
    CustomerSegment,
    LoyaltyEntry,
    OutboxEvent,
    Reward,
    SkippedDecision,
)

P = ParamSpec("P")
T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its directory created, WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # A pool as large as what runs at once (the consumer, INTERACTION_SEND_CONCURRENCY sends, the
    # API): connections beyond the pool are closed after use, and a new one costs a fork on PostgreSQL.
    pool = {} if url.startswith("sqlite") else {"pool_size": 12, "max_overflow": 12}
    engine = create_engine(url, pool_pre_ping=True, **pool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


MIGRATION_LOCK = 7_360_001
"""PostgreSQL advisory lock held while migrating: replicas starting together take turns."""


def migrate(engine: Engine) -> None:
    """Bring the database to the newest Alembic revision (safe to run from several replicas at once)."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("ecrm_interaction") / "migrations"))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone columns: they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


CUSTOMER_TABLES = (Customer, CustomerSegment, Consent, Action, SkippedDecision, LoyaltyEntry, Reward, Case, OutboxEvent)
"""Every table with a ``customer_id`` (a test checks no model is missing); case notes and audit
entries about a customer are found through these."""


MARKETING = "marketing"
"""The purpose the contact policy enforces: marketing messages need the customer's consent to it
on their channel. Consent to other purposes is recorded (and exported) the same way."""


def _row_dict(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _deleted(result: Any) -> int:
    return int(result.rowcount or 0)


def _audit_about(ids: list[str], case_ids: list[str]) -> Any:
    return select(AuditEntry).where(
        or_(
            (AuditEntry.entity == "customer") & AuditEntry.entity_id.in_(ids),
            (AuditEntry.entity == "case") & AuditEntry.entity_id.in_(case_ids),
        )
    )


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    # --- unique inserts ------------------------------------------------------------------

    def read(self, query: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``query(session, *args, **kwargs)`` in a session of its own (for callers without a
        unit of work: the CLI, tests): ``store.read(rules.rule, "r1")``."""
        with self.sessions() as session:
            return query(session, *args, **kwargs)

    def write(self, change: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``change(session, *args, **kwargs)`` in a transaction of its own, committed when it
        returns, rolled back when it raises: ``store.write(rules.set_enabled, "r1", False, "cli")``."""
        with self.sessions.begin() as session:
            return change(session, *args, **kwargs)

    # --- what the consumer records -------------------------------------------------------

    def session(self) -> Session:
        """A session for one consumed batch; the caller commits it (``with store.session.begin()``)."""
        return self.sessions()

    # --- privacy requests ---------------------------------------------------------------------

    def customer_records(self, identities: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Every row about these ids, by table (the export of a privacy request)."""
        ids = list(identities)
        with self.sessions() as session:
            found = {
                model.__tablename__: [
                    _row_dict(r) for r in session.scalars(select(model).where(model.customer_id.in_(ids)))
                ]
                for model in CUSTOMER_TABLES
            }
            case_ids = [c["id"] for c in found[Case.__tablename__]]
            notes = session.scalars(select(CaseNote).where(CaseNote.case_id.in_(case_ids)))
            found[CaseNote.__tablename__] = [_row_dict(n) for n in notes]
            found[AuditEntry.__tablename__] = [_row_dict(a) for a in session.scalars(_audit_about(ids, case_ids))]
        return found

    def erase_customer(
        self, identities: Sequence[str], actor: str, reference: str, *, audit: bool = True
    ) -> dict[str, int]:
        """Delete every row about these ids in one transaction; how many went, by table. The
        audit log keeps that an erasure happened, under ``reference`` (not the customer's id)."""
        ids = list(identities)
        deleted: dict[str, int] = {}
        with self.sessions.begin() as session:
            case_ids = list(session.scalars(select(Case.id).where(Case.customer_id.in_(ids))))
            audit_ids = list(session.scalars(_audit_about(ids, case_ids).with_only_columns(AuditEntry.id)))
            deleted[CaseNote.__tablename__] = _deleted(
                session.execute(delete(CaseNote).where(CaseNote.case_id.in_(case_ids)))
            )
            for model in CUSTOMER_TABLES:
                deleted[model.__tablename__] = _deleted(
                    session.execute(delete(model).where(model.customer_id.in_(ids)))
                )
            deleted[AuditEntry.__tablename__] = _deleted(
                session.execute(delete(AuditEntry).where(AuditEntry.id.in_(audit_ids)))
            )
            if audit:
                audit_log.record(
                    session, actor, "erase", "customer", reference, {"identities": len(ids), "rows": deleted}
                )
        return deleted
