"""The interaction service's relational shell: the engine, the migrations and the unit of work.

The queries live in one repository module per aggregate (``storage/actions.py``, ``cases.py``,
``contacts.py``, ``loyalty.py``, …), as functions taking the caller's session. The shell that
owns a unit of work (a consumed batch, a dispatcher batch, an API request) opens the session or
transaction and passes it; a caller without one uses :meth:`Store.read` / :meth:`Store.write`.

Every write that must happen at most once goes through a unique key (actions, ledger
entries, rewards, cases: ``dedup_key``), inserted with "on conflict do nothing", so a
redelivered Kafka batch or a second replica changes nothing. Work is claimed with a lease
(a conditional update), so two dispatchers never carry out the same action at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

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

    else:

        @event.listens_for(engine, "connect")
        def _postgres_plans(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # The batch reads bind one array of ids (``= ANY(:ids)``). A prepared statement's
            # generic plan guesses a handful of ids and scans a whole status instead (65 ms for
            # 500 customers against 4 ms), so every execution is planned for its own array.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET plan_cache_mode = force_custom_plan")
            dbapi_connection.commit()

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


MARKETING = "marketing"
"""The purpose the contact policy enforces: marketing messages need the customer's consent to it
on their channel. Consent to other purposes is recorded (and exported) the same way."""


class Store:
    """The unit-of-work holder: the engine and its session factory (``sessions()`` for reads,
    ``sessions.begin()`` for a transaction), and :meth:`read` / :meth:`write` for one repository
    function in a session of its own. It holds no queries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

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
