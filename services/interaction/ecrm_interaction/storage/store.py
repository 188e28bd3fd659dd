"""The interaction service's relational shell: engine, migrations, and the queries it needs.

Every write that must happen at most once goes through a unique key (actions, ledger
entries, rewards, cases: ``dedup_key``), inserted with "on conflict do nothing", so a
redelivered Kafka batch or a second replica changes nothing. Work is claimed with a lease
(a conditional update), so two dispatchers never carry out the same action at once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.engine.planning import RULE_DELETED, RULE_DISABLED, PlannedAction, released_key, releases_once
from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec, TemplateSpec
from ecrm_interaction.engine.triggers import OWN_EVENTS
from ecrm_interaction.storage import outbox
from ecrm_interaction.storage.contacts import ContactRow, contacts
from ecrm_interaction.storage.models import (
    Action,
    AddressSuppression,
    ApiToken,
    AuditEntry,
    Case,
    CaseNote,
    Consent,
    Customer,
    CustomerSegment,
    EmailTemplate,
    LoyaltyEntry,
    LoyaltyProgramRow,
    OutboxEvent,
    Reward,
    Rule,
    ScheduleState,
    SkippedDecision,
)
from ecrm_schemas.actions import OPEN
from ecrm_schemas.catalog import LOYALTY_POINTS_AWARDED

LOYALTY_EVENT = LOYALTY_POINTS_AWARDED
"""What the ledger reports; the aggregator folds its balance and tier into the profile."""
ROLES = ("viewer", "agent", "marketer", "admin")
"""Least to most: viewers read; agents also work cases (open, note, assign, resolve); marketers
also change rules, templates, segments, consent and the loyalty program; admins also manage
tokens and suppressions and read the audit log."""


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


ABSENT_CUSTOMERS = "ecrm_absent_customers"
"""``session.info`` key: ids :meth:`Store.load_customers` found no row for (no query to ask again)."""

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


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


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


def _marketing_consent(session: Session, customer_id: str) -> dict[str, bool]:
    rows = session.scalars(select(Consent).where(Consent.customer_id == customer_id, Consent.purpose == MARKETING))
    return {c.channel: c.granted for c in rows}


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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    # --- unique inserts ------------------------------------------------------------------

    def _insert_ignore(self, session: Session, model: Any, rows: list[dict[str, Any]]) -> int:
        """Insert ``rows``, skipping those whose unique keys exist; returns how many were new."""
        if not rows:
            return 0
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        key = next(iter(model.__table__.primary_key.columns))
        statement = dialect.insert(model).values(rows).on_conflict_do_nothing().returning(key)
        return len(session.execute(statement).all())

    # --- rules, templates, the loyalty program --------------------------------------------

    def upsert_rules(self, templates: list[TemplateSpec], rules: list[RuleSpec], actor: str = "rules-file") -> None:
        """Create or update templates and rules by id (what is given wins); audited."""
        with self.sessions.begin() as session:
            for t in templates:
                session.merge(EmailTemplate(id=t.id, subject=t.subject, text_body=t.text, html_body=t.html))
            session.flush()
            known = {t for (t,) in session.execute(select(EmailTemplate.id))}
            for r in rules:
                missing = r.email_templates() - known
                if missing:
                    raise ValueError(f"rule {r.id!r} uses templates that do not exist: {sorted(missing)}")
                session.merge(Rule(id=r.id, name=r.name, enabled=r.enabled, spec=r.model_dump_json()))
                if not r.enabled:
                    self.cancel_rule_actions(session, r.id, RULE_DISABLED, datetime.now(UTC))
                self._audit(session, actor, "upsert", "rule", r.id, {"name": r.name, "enabled": r.enabled})
            for t in templates:
                self._audit(session, actor, "upsert", "template", t.id, {})

    def rule(self, rule_id: str) -> RuleSpec | None:
        with self.sessions() as session:
            row = session.get(Rule, rule_id)
            return RuleSpec.model_validate_json(row.spec) if row else None

    def all_rules(self) -> list[RuleSpec]:
        with self.sessions() as session:
            rows = session.scalars(select(Rule).order_by(Rule.id)).all()
            return [RuleSpec.model_validate_json(r.spec) for r in rows]

    def enabled_rules(self) -> tuple[list[RuleSpec], dict[str, TemplateSpec]]:
        with self.sessions() as session:
            rules = session.scalars(select(Rule).where(Rule.enabled.is_(True)).order_by(Rule.id)).all()
            return [RuleSpec.model_validate_json(r.spec) for r in rules], self._templates(session)

    def templates(self) -> dict[str, TemplateSpec]:
        with self.sessions() as session:
            return self._templates(session)

    @staticmethod
    def _templates(session: Session) -> dict[str, TemplateSpec]:
        # Not validated again: a template stored before templates were checked must not stop
        # every other one (its sends fail with render_failed instead).
        return {
            t.id: TemplateSpec.model_construct(id=t.id, subject=t.subject, text=t.text_body, html=t.html_body)
            for t in session.scalars(select(EmailTemplate)).all()
        }

    def delete_template(self, template_id: str, actor: str) -> list[str] | None:
        """Delete a template no rule uses: None when it does not exist, else the ids of the rules
        that use it (nothing deleted when there are any); audited."""
        with self.sessions.begin() as session:
            row = session.get(EmailTemplate, template_id)
            if row is None:
                return None
            users = sorted(
                rule.id
                for rule in session.scalars(select(Rule)).all()
                if template_id in RuleSpec.model_validate_json(rule.spec).email_templates()
            )
            if not users:
                session.delete(row)
                self._audit(session, actor, "delete", "template", template_id, {})
            return users

    def delete_rule(self, rule_id: str, actor: str) -> bool:
        with self.sessions.begin() as session:
            row = session.get(Rule, rule_id)
            if row is None:
                return False
            session.delete(row)
            cancelled = self.cancel_rule_actions(session, rule_id, RULE_DELETED, datetime.now(UTC))
            self._audit(session, actor, "delete", "rule", rule_id, {"cancelled": cancelled})
            return True

    def set_enabled(self, rule_id: str, enabled: bool, actor: str) -> RuleSpec | None:
        with self.sessions.begin() as session:
            row = session.get(Rule, rule_id)
            if row is None:
                return None
            spec = RuleSpec.model_validate_json(row.spec).model_copy(update={"enabled": enabled})
            row.enabled, row.spec = enabled, spec.model_dump_json()
            detail = {}
            if not enabled:
                detail["cancelled"] = self.cancel_rule_actions(session, rule_id, RULE_DISABLED, datetime.now(UTC))
            self._audit(session, actor, "enable" if enabled else "disable", "rule", rule_id, detail)
            return spec

    def cancel_rule_actions(self, session: Session, rule_id: str, reason: str, now: datetime) -> int:
        """Cancel every action of ``rule_id`` not carried out yet (waiting, pending, deferred), with
        ``reason``. Cancelled is final: enabling the rule again does not bring them back."""
        rows = session.scalars(select(Action).where(Action.rule_id == rule_id, Action.status.in_(OPEN))).all()
        for row in rows:
            self.close_action(row, "cancelled", reason, now)
        return len(rows)

    def cancel_customer_actions(self, session: Session, customer_id: str, reason: str, now: datetime) -> int:
        """Cancel every action for ``customer_id`` not carried out yet, with ``reason``."""
        rows = session.scalars(select(Action).where(Action.customer_id == customer_id, Action.status.in_(OPEN))).all()
        for row in rows:
            self.close_action(row, "cancelled", reason, now)
        return len(rows)

    @staticmethod
    def close_action(row: Action, status: str, reason: str, now: datetime) -> None:
        """Give an action its final ``status``; one that reached no one frees its rule's
        ``once_per_customer`` place (see :func:`ecrm_interaction.engine.planning.releases_once`)."""
        row.status, row.reason, row.done_at, row.lease_until = status, reason[:300], now, None
        if releases_once(row.payload, status, reason):
            row.dedup_key = released_key(row.dedup_key, row.id)

    def rule_states(self) -> dict[str, bool]:
        """Every rule's id and whether it is enabled (the dispatcher checks it before acting)."""
        with self.sessions() as session:
            return {rule_id: enabled for rule_id, enabled in session.execute(select(Rule.id, Rule.enabled))}

    def loyalty_program(self) -> LoyaltyProgram:
        with self.sessions() as session:
            row = session.get(LoyaltyProgramRow, 1)
            return LoyaltyProgram.model_validate_json(row.spec) if row else LoyaltyProgram()

    def set_loyalty_program(self, program: LoyaltyProgram, actor: str) -> None:
        with self.sessions.begin() as session:
            session.merge(LoyaltyProgramRow(id=1, spec=program.model_dump_json()))
            self._audit(session, actor, "upsert", "loyalty_program", "1", program.model_dump(mode="json"))

    # --- what the consumer records -------------------------------------------------------

    def session(self) -> Session:
        """A session for one consumed batch; the caller commits it (``with store.session.begin()``)."""
        return self.sessions()

    def upsert_customer(
        self,
        session: Session,
        customer_id: str,
        profile: dict[str, Any],
        version: int,
        email: str | None,
        timezone: str | None,
    ) -> None:
        absent = session.info.get(ABSENT_CUSTOMERS, set())
        row = None if customer_id in absent else session.get(Customer, customer_id)
        absent.discard(customer_id)
        if row is None:
            session.add(
                Customer(
                    customer_id=customer_id,
                    profile=_json(profile),
                    profile_version=version,
                    email=email,
                    timezone=timezone,
                )
            )  # inserted with the batch's other new rows at the next flush
        elif version >= row.profile_version:
            row.profile, row.profile_version, row.email, row.timezone = _json(profile), version, email, timezone

    def _customer_row(self, session: Session, customer_id: str) -> Customer:
        row = session.get(Customer, customer_id)
        if row is None:
            row = Customer(customer_id=customer_id, profile_version=-1)
            session.add(row)
            session.flush()
        return row

    def mark_unsubscribed(self, session: Session, customer_id: str, at: datetime) -> bool:
        """Returns whether it changed anything (an unsubscribe is idempotent)."""
        row = self._customer_row(session, customer_id)
        if row.unsubscribed_at is not None:
            return False
        row.unsubscribed_at = at
        return True

    def mark_suppressed(self, session: Session, address: str, reason: str, source: str, at: datetime) -> bool:
        """Suppress ``address`` (a hard bounce, a complaint); a suppression in force stays as it
        is, a lifted one is in force again. Returns whether it changed anything."""
        digest = address_digest(address)
        new = {"address_digest": digest, "reason": reason, "source": source[:200], "suppressed_at": at}
        if self._insert_ignore(session, AddressSuppression, [new]) == 1:  # two replicas at once: one row
            return True
        row = session.get(AddressSuppression, digest)
        if row is not None and row.lifted_at is not None and row.lifted_at <= at:
            row.reason, row.source, row.suppressed_at, row.lifted_at, row.lifted_by = (
                reason,
                source[:200],
                at,
                None,
                None,
            )
            return True
        return False

    def address_suppression(self, address: str | None) -> AddressSuppression | None:
        """The suppression in force for ``address``, if any."""
        if not address:
            return None
        with self.sessions() as session:
            return self._suppression(session, address_digest(address))

    @staticmethod
    def _suppression(session: Session, digest: str) -> AddressSuppression | None:
        row = session.get(AddressSuppression, digest)
        return row if row is not None and row.lifted_at is None else None

    def suppressions(self, limit: int = 100) -> list[AddressSuppression]:
        """The suppressions in force, newest first."""
        with self.sessions() as session:
            query = select(AddressSuppression).where(AddressSuppression.lifted_at.is_(None))
            return list(session.scalars(query.order_by(AddressSuppression.suppressed_at.desc()).limit(limit)))

    def lift_suppression(self, digest: str, actor: str, reason: str, now: datetime) -> AddressSuppression | None:
        """Lift the suppression in force for the address of ``digest``; audited with the reason."""
        with self.sessions.begin() as session:
            row = self._suppression(session, digest)
            if row is None:
                return None
            row.lifted_at, row.lifted_by = now, actor
            detail = {"reason": reason, "was": row.reason, "source": row.source}
            self._audit(session, actor, "lift", "address_suppression", digest, detail)
            return row

    def recipient_of(self, session: Session, action_id: str) -> str | None:
        """The address an email action was sent to."""
        return session.scalar(select(Action.recipient).where(Action.id == action_id, Action.kind == "email"))

    def current_email(self, session: Session, customer_id: str) -> str | None:
        return session.scalar(select(Customer.email).where(Customer.customer_id == customer_id))  # autoflushes

    # --- the event outbox -----------------------------------------------------------------

    def set_consent(
        self,
        session: Session,
        customer_id: str,
        channel: str,
        granted: bool,
        purpose: str,
        source: str,
        at: datetime,
    ) -> None:
        row = session.get(Consent, (customer_id, channel, purpose))
        if row is None:
            session.add(
                Consent(
                    customer_id=customer_id,
                    channel=channel,
                    granted=granted,
                    purpose=purpose,
                    source=source,
                    updated_at=at,
                )
            )
        elif aware(row.updated_at) <= at:  # type: ignore[operator]
            row.granted, row.source, row.updated_at = granted, source, at
        if granted and channel == "email" and purpose == MARKETING:
            customer = session.get(Customer, customer_id)
            if customer is not None and customer.unsubscribed_at is not None and aware(customer.unsubscribed_at) < at:  # type: ignore[operator]
                customer.unsubscribed_at = None  # opting in again undoes an earlier unsubscribe

    def set_segment(
        self, session: Session, customer_id: str, segment_id: str, name: str, member: bool, at: datetime
    ) -> None:
        row = session.get(CustomerSegment, (customer_id, segment_id))
        if member and row is None:
            session.add(CustomerSegment(customer_id=customer_id, segment_id=segment_id, segment_name=name, since=at))
        elif not member and row is not None:
            session.delete(row)

    def facts_of(
        self, session: Session, customer_id: str
    ) -> tuple[dict[str, Any] | None, frozenset[str], dict[str, bool]]:
        """The stored profile, segments and consent of a customer."""
        row = session.get(Customer, customer_id)
        profile = orjson.loads(row.profile) if row is not None and row.profile else None
        segments = frozenset(
            session.scalars(select(CustomerSegment.segment_id).where(CustomerSegment.customer_id == customer_id)).all()
        )
        return profile, segments, _marketing_consent(session, customer_id)

    def load_customers(self, session: Session, customer_ids: Iterable[str]) -> None:
        """Bring a batch's customers into the session at once, so that each change's
        ``upsert_customer`` finds its row without a query of its own."""
        ids = list(set(customer_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            rows = session.scalars(select(Customer).where(Customer.customer_id.in_(ids[start : start + 1000]))).all()
            found.update(row.customer_id for row in rows)
        session.info.setdefault(ABSENT_CUSTOMERS, set()).update(set(ids) - found)

    def customers_waiting(self, session: Session, customer_ids: Iterable[str]) -> set[str]:
        """Which of the customers have actions waiting (one query for a batch)."""
        ids = list(set(customer_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            found.update(
                session.scalars(
                    select(Action.customer_id)
                    .where(Action.status == "waiting", Action.customer_id.in_(ids[start : start + 1000]))
                    .distinct()
                )
            )
        return found

    def cancel_waiting(
        self,
        session: Session,
        customer_id: str,
        matches: Callable[[list[dict[str, Any]], str], str | None],
        now: datetime,
    ) -> int:
        """Cancel the customer's waiting actions for which ``matches(cancel_on, cause)`` gives a reason."""
        rows = session.scalars(
            select(Action).where(Action.customer_id == customer_id, Action.status == "waiting")
        ).all()
        cancelled = 0
        for row in rows:
            cancel_on = orjson.loads(row.payload).get("cancel_on") or []
            if cancel_on and (reason := matches(cancel_on, row.cause)):
                row.status, row.reason, row.done_at = "cancelled", reason, now
                cancelled += 1
        return cancelled

    def rule_last_acted(self, session: Session, rule_id: str, customer_id: str) -> datetime | None:
        """When the rule last planned something for the customer that was not cancelled or suppressed."""
        at = session.scalar(
            select(func.max(Action.created_at)).where(
                Action.rule_id == rule_id,
                Action.customer_id == customer_id,
                Action.status.not_in(("cancelled", "suppressed")),
            )
        )
        return aware(at)

    def record_skip(
        self, session: Session, rule_id: str, customer_id: str, reason: str, detail: str, cause: str, now: datetime
    ) -> None:
        """Record that ``rule_id`` fired for the customer and did nothing, for ``reason``: one row
        per rule, customer and reason, its count raised by each new cause (not by a redelivery)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        table = SkippedDecision.__table__
        statement = dialect.insert(SkippedDecision).values(
            id=str(uuid.uuid4()), rule_id=rule_id, customer_id=customer_id, reason=reason,
            detail=detail[:300], cause=cause[:300], count=1, first_at=now, last_at=now,
        )  # fmt: skip
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
        session.execute(statement)

    def decisions(
        self,
        *,
        customer_id: str | None = None,
        rule_id: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        reason: str | None = None,
        limit: int = 100,
    ) -> list[Action | SkippedDecision]:
        """Actions and skipped decisions, newest first (a skip by its latest time), filtered;
        ``reason`` matches a prefix (``frequency_cap`` finds every cap). Skips have no ``kind``
        and the status ``skipped``."""
        found: list[Action | SkippedDecision] = []
        with self.sessions() as session:
            if status != "skipped":
                query = select(Action).order_by(Action.created_at.desc()).limit(limit)
                for column, value in (
                    (Action.customer_id, customer_id), (Action.rule_id, rule_id),
                    (Action.kind, kind), (Action.status, status),
                ):  # fmt: skip
                    if value is not None:
                        query = query.where(column == value)
                if reason is not None:
                    query = query.where(Action.reason.startswith(reason, autoescape=True))
                found += session.scalars(query)
            if status in (None, "skipped") and kind is None:
                skips = select(SkippedDecision).order_by(SkippedDecision.last_at.desc()).limit(limit)
                for column, value in (
                    (SkippedDecision.customer_id, customer_id), (SkippedDecision.rule_id, rule_id),
                ):  # fmt: skip
                    if value is not None:
                        skips = skips.where(column == value)
                if reason is not None:
                    skips = skips.where(SkippedDecision.reason.startswith(reason, autoescape=True))
                found += session.scalars(skips)

        def newest(row: Action | SkippedDecision) -> datetime:
            at = row.last_at if isinstance(row, SkippedDecision) else row.created_at
            return aware(at) or datetime.min.replace(tzinfo=UTC)

        return sorted(found, key=newest, reverse=True)[:limit]

    def add_actions(self, session: Session, planned: Sequence[PlannedAction], now: datetime) -> int:
        rows = [
            {
                "id": str(uuid.uuid4()),
                "dedup_key": p.dedup_key,
                "rule_id": p.rule_id,
                "customer_id": p.customer_id,
                "kind": p.kind,
                "category": p.category,
                "cause": p.cause,
                "status": p.status,
                "due_at": p.due_at,
                "payload": _json(p.payload),
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for p in planned
        ]
        return self._insert_ignore(session, Action, rows)

    # --- loyalty --------------------------------------------------------------------------

    def balance(self, session: Session, customer_id: str) -> int:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(LoyaltyEntry.customer_id == customer_id)
            )
            or 0
        )

    def add_points(
        self,
        session: Session,
        customer_id: str,
        points: int,
        reason: str,
        dedup_key: str,
        rule_id: str | None,
        at: datetime,
    ) -> int | None:
        """Add a ledger entry once per ``dedup_key``; returns the points it added (a balance never
        goes below 0: a debit takes at most what is there), None when the key was used already.
        The entry is reported as a ``Loyalty Points Awarded`` event (the balance, as of when it is
        published: :func:`ecrm_interaction.delivery.outbox_relay.outbox_event`)."""
        if points < 0:
            points = max(points, -self.balance(session, customer_id))
        entry_id = str(uuid.uuid4())
        row = {
            "id": entry_id,
            "customer_id": customer_id,
            "points": points,
            "reason": reason,
            "rule_id": rule_id,
            "dedup_key": dedup_key,
            "at": at,
        }
        if self._insert_ignore(session, LoyaltyEntry, [row]) != 1:
            return None
        properties = {"points": points, "reason": reason[:200] or "points", "rule_id": rule_id}
        outbox.add_event(session, LOYALTY_EVENT, customer_id, f"{OWN_EVENTS}loyalty-{entry_id}", properties, at)
        return points

    def issue_reward(
        self,
        session: Session,
        customer_id: str,
        reward: str,
        code: str,
        points_cost: int,
        dedup_key: str,
        rule_id: str | None,
        at: datetime,
    ) -> bool:
        row = {
            "id": str(uuid.uuid4()),
            "customer_id": customer_id,
            "reward": reward,
            "code": code,
            "points_cost": points_cost,
            "rule_id": rule_id,
            "dedup_key": dedup_key,
            "issued_at": at,
        }
        return self._insert_ignore(session, Reward, [row]) == 1

    def loyalty_view(self, customer_id: str, limit: int = 20) -> tuple[int, list[LoyaltyEntry], list[Reward]]:
        with self.sessions() as session:
            entries = list(
                session.scalars(
                    select(LoyaltyEntry)
                    .where(LoyaltyEntry.customer_id == customer_id)
                    .order_by(LoyaltyEntry.at.desc())
                    .limit(limit)
                )
            )
            rewards = list(
                session.scalars(
                    select(Reward).where(Reward.customer_id == customer_id).order_by(Reward.issued_at.desc())
                )
            )
            return self.balance(session, customer_id), entries, rewards

    # --- the dispatcher ------------------------------------------------------------------

    def contact(self, customer_id: str, channel: str = "email") -> ContactRow:
        """:func:`ecrm_interaction.storage.contacts.contacts` of one customer."""
        with self.sessions() as session:
            return contacts(session, {customer_id: None})[customer_id]

    def message_history(
        self, customer_id: str, rule_id: str | None, since: datetime
    ) -> tuple[list[datetime], datetime | None]:
        """Marketing emails sent to the customer since ``since``, and when ``rule_id`` last sent to them."""
        with self.sessions() as session:
            sent = [
                aware(at)
                for at in session.scalars(
                    select(Action.done_at).where(
                        Action.customer_id == customer_id,
                        Action.kind == "email",
                        Action.status == "sent",
                        Action.category == "marketing",
                        Action.done_at >= since,
                    )
                )
            ]
            last = session.scalar(
                select(func.max(Action.done_at)).where(
                    Action.customer_id == customer_id, Action.rule_id == rule_id, Action.status.in_(("sent", "done"))
                )
            )
            return [s for s in sent if s is not None], aware(last)

    # --- schedules -------------------------------------------------------------------------

    def schedule_last(self, rule_id: str) -> datetime | None:
        with self.sessions() as session:
            row = session.get(ScheduleState, rule_id)
            return aware(row.last_slot) if row else None

    def claim_slot(self, rule_id: str, previous: datetime | None, slot: datetime) -> bool:
        """Move a schedule from ``previous`` to ``slot``; False when another replica did it first."""
        with self.sessions.begin() as session:
            if previous is None:
                return self._insert_ignore(session, ScheduleState, [{"rule_id": rule_id, "last_slot": slot}]) == 1
            result = session.execute(
                update(ScheduleState)
                .where(ScheduleState.rule_id == rule_id, ScheduleState.last_slot == previous)
                .values(last_slot=slot)
            )
            return result.rowcount == 1  # type: ignore[attr-defined]

    def audience(self, segment_id: str | None, limit: int = 1_000_000) -> list[str]:
        """The members of ``segment_id``, or every customer with an address."""
        with self.sessions() as session:
            if segment_id is None:
                query = select(Customer.customer_id).where(Customer.email.is_not(None))
            else:
                query = select(CustomerSegment.customer_id).where(CustomerSegment.segment_id == segment_id)
            return list(
                session.scalars(
                    query.order_by(Customer.customer_id if segment_id is None else CustomerSegment.customer_id).limit(
                        limit
                    )
                )
            )

    # --- cases -----------------------------------------------------------------------------

    def open_case(
        self,
        session: Session,
        *,
        customer_id: str,
        subject: str,
        priority: str,
        sla: timedelta,
        assignee: str | None,
        rule_id: str | None,
        dedup_key: str | None,
        now: datetime,
        note: tuple[str, str] | None = None,
    ) -> str | None:
        """Open a case (once per ``dedup_key``), with ``note`` (author, text) as its first note, and
        record its ``Case Opened`` event; returns its id, or None when it already existed."""
        case_id = str(uuid.uuid4())
        row = {
            "id": case_id,
            "customer_id": customer_id,
            "subject": subject,
            "priority": priority,
            "status": "open",
            "assignee": assignee,
            "sla_due_at": now + sla,
            "rule_id": rule_id,
            "dedup_key": dedup_key,
            "created_at": now,
            "updated_at": now,
        }
        if self._insert_ignore(session, Case, [row]) != 1:
            return None
        if note is not None:
            session.add(CaseNote(id=str(uuid.uuid4()), case_id=case_id, author=note[0], text=note[1], created_at=now))
        self._case_event(session, "Case Opened", row, f"{case_id}-opened", now)
        return case_id

    def _case_event(self, session: Session, name: str, case: dict[str, Any], suffix: str, at: datetime) -> None:
        properties = {
            "case_id": case["id"],
            "subject": case["subject"],
            "priority": case["priority"],
            "status": case["status"],
            "assignee": case["assignee"],
            "rule_id": case["rule_id"],
        }
        outbox.add_event(session, name, case["customer_id"], f"{OWN_EVENTS}case-{suffix}", properties, at)

    def case(self, case_id: str) -> tuple[Case, list[CaseNote]] | None:
        with self.sessions() as session:
            row = session.get(Case, case_id)
            if row is None:
                return None
            notes = list(
                session.scalars(select(CaseNote).where(CaseNote.case_id == case_id).order_by(CaseNote.created_at))
            )
            return row, notes

    def cases(self, customer_id: str | None = None, status: str | None = None, limit: int = 100) -> list[Case]:
        with self.sessions() as session:
            query = select(Case).order_by(Case.created_at.desc()).limit(limit)
            if customer_id is not None:
                query = query.where(Case.customer_id == customer_id)
            if status is not None:
                query = query.where(Case.status == status)
            return list(session.scalars(query))

    def case_notes(self, case_ids: Sequence[str]) -> dict[str, list[CaseNote]]:
        """The notes of these cases, oldest first (one query for a list of cases)."""
        notes: dict[str, list[CaseNote]] = {case_id: [] for case_id in case_ids}
        with self.sessions() as session:
            for start in range(0, len(case_ids), 1000):
                rows = session.scalars(
                    select(CaseNote)
                    .where(CaseNote.case_id.in_(list(case_ids[start : start + 1000])))
                    .order_by(CaseNote.created_at, CaseNote.id)
                )
                for note in rows:
                    notes[note.case_id].append(note)
        return notes

    def update_case(self, case_id: str, actor: str, now: datetime, **changes: Any) -> Case | None:
        with self.sessions.begin() as session:
            row = session.get(Case, case_id)
            if row is None:
                return None
            changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
            if not changes:
                return row
            before = {k: getattr(row, k) for k in changes}
            for key, value in changes.items():
                setattr(row, key, value)
            if "status" in changes:
                row.resolved_at = now if row.status == "resolved" else None
            row.updated_at = now
            self._audit(session, actor, "update", "case", case_id, {"before": before, "after": changes})
            name = "Case Resolved" if changes.get("status") == "resolved" else "Case Updated"
            self._case_event(session, name, _row_dict(row), f"{case_id}-{uuid.uuid4()}", now)
            return row

    def add_case_note(self, case_id: str, author: str, text: str, now: datetime) -> CaseNote | None:
        with self.sessions.begin() as session:
            if session.get(Case, case_id) is None:
                return None
            note = CaseNote(id=str(uuid.uuid4()), case_id=case_id, author=author, text=text, created_at=now)
            session.add(note)
            self._audit(session, author, "note", "case", case_id, {})
            return note

    def claim_escalations(self, now: datetime, limit: int = 100) -> list[Case]:
        """Unresolved cases past their SLA, not escalated yet: each marked escalated, once."""
        with self.sessions.begin() as session:
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

    # --- the customer view ------------------------------------------------------------------

    def customer(self, customer_id: str) -> Customer | None:
        with self.sessions() as session:
            return session.get(Customer, customer_id)

    def customer_segments(self, customer_id: str) -> list[CustomerSegment]:
        with self.sessions() as session:
            return list(session.scalars(select(CustomerSegment).where(CustomerSegment.customer_id == customer_id)))

    def consents(self, customer_id: str) -> list[Consent]:
        with self.sessions() as session:
            return list(session.scalars(select(Consent).where(Consent.customer_id == customer_id)))

    def actions(
        self, customer_id: str | None = None, kind: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Action]:
        with self.sessions() as session:
            query = select(Action).order_by(Action.created_at.desc()).limit(limit)
            for column, value in ((Action.customer_id, customer_id), (Action.kind, kind), (Action.status, status)):
                if value is not None:
                    query = query.where(column == value)
            return list(session.scalars(query))

    def actions_by_id(self, ids: Sequence[str]) -> list[Action]:
        with self.sessions() as session:
            return list(session.scalars(select(Action).where(Action.id.in_(list(ids)))))

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
                self._audit(session, actor, "erase", "customer", reference, {"identities": len(ids), "rows": deleted})
        return deleted

    # --- tokens and the audit log -------------------------------------------------------------

    def add_token(self, name: str, role: str, actor: str) -> str:
        """Create a token and return it (shown once; only its hash is kept)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        token = f"ecrm_{role[:1]}_{secrets.token_urlsafe(24)}"
        with self.sessions.begin() as session:
            session.add(ApiToken(id=str(uuid.uuid4()), name=name, role=role, token_hash=hash_token(token)))
            self._audit(session, actor, "create", "api_token", name, {"role": role})
        return token

    def revoke_token(self, name: str, actor: str) -> bool:
        with self.sessions.begin() as session:
            result = session.execute(
                update(ApiToken)
                .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            if result.rowcount:  # type: ignore[attr-defined]
                self._audit(session, actor, "revoke", "api_token", name, {})
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def tokens(self) -> list[ApiToken]:
        with self.sessions() as session:
            return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))

    def token_by_hash(self, digest: str) -> ApiToken | None:
        with self.sessions() as session:
            return session.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)))

    def audit(self, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]) -> None:
        with self.sessions.begin() as session:
            self._audit(session, actor, action, entity, entity_id, detail)

    @staticmethod
    def _audit(session: Session, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]) -> None:
        session.add(
            AuditEntry(
                id=str(uuid.uuid4()),
                at=datetime.now(UTC),
                actor=actor,
                action=action,
                entity=entity,
                entity_id=entity_id,
                detail=_json(detail),
            )
        )

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        with self.sessions() as session:
            return list(session.scalars(select(AuditEntry).order_by(AuditEntry.at.desc()).limit(limit)))
