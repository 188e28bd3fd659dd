"""The interaction service's relational shell: engine, migrations, and the queries it needs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from ecrm_interaction.models import EmailTemplate, Rule, Send
from ecrm_interaction.rule_matching import RuleSpec, TemplateSpec


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its directory created, WAL and foreign keys."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def migrate(engine: Engine) -> None:
    """Bring the database to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("ecrm_interaction") / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def upsert_rules(self, templates: list[TemplateSpec], rules: list[RuleSpec]) -> None:
        """Create or update templates and rules by id (what a rules file declares wins)."""
        with self.sessions.begin() as session:
            for t in templates:
                session.merge(EmailTemplate(id=t.id, subject=t.subject, text_body=t.text, html_body=t.html))
            session.flush()
            for r in rules:
                session.merge(Rule(**r.model_dump()))

    def enabled_rules(self) -> tuple[list[RuleSpec], dict[str, TemplateSpec]]:
        with self.sessions() as session:
            rules = session.scalars(select(Rule).where(Rule.enabled.is_(True)).order_by(Rule.id)).all()
            templates = session.scalars(select(EmailTemplate)).all()
            return (
                [RuleSpec.from_row(r) for r in rules],
                {t.id: TemplateSpec(id=t.id, subject=t.subject, text=t.text_body, html=t.html_body) for t in templates},
            )

    def all_rules(self) -> list[RuleSpec]:
        with self.sessions() as session:
            return [RuleSpec.from_row(r) for r in session.scalars(select(Rule).order_by(Rule.id)).all()]

    def claim_send(self, *, dedup_key: str, rule_id: str, customer_id: str, trigger_message_id: str) -> Send | None:
        """Record a pending send; None when this key was already sent or skipped.

        A ``pending`` or ``failed`` send left by an earlier attempt is returned to be tried again.
        """
        with self.sessions() as session:
            send = Send(
                id=str(uuid.uuid4()),
                dedup_key=dedup_key,
                rule_id=rule_id,
                customer_id=customer_id,
                trigger_message_id=trigger_message_id,
                status="pending",
            )
            session.add(send)
            try:
                session.commit()
                return send
            except IntegrityError:
                session.rollback()
            existing = session.scalars(select(Send).where(Send.dedup_key == dedup_key)).one()
            return existing if existing.status in ("pending", "failed") else None

    def finish_send(
        self, send_id: str, *, status: str, reason: str | None = None, recipient: str | None = None,
        subject: str | None = None,
    ) -> None:  # fmt: skip
        with self.sessions.begin() as session:
            send = session.get_one(Send, send_id)
            send.status, send.reason = status, reason
            send.recipient, send.subject = recipient, subject
            if status == "sent":
                send.sent_at = datetime.now(UTC)

    def sends(self, customer_id: str | None = None, limit: int = 100) -> list[Send]:
        with self.sessions() as session:
            query = select(Send).order_by(Send.created_at.desc()).limit(limit)
            if customer_id is not None:
                query = query.where(Send.customer_id == customer_id)
            return list(session.scalars(query).all())
