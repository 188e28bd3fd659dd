"""Relational state of the interaction service (SQLAlchemy 2). Schema changes go through Alembic
(``migrations/versions``); a test checks these models and the migrations agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Dialect, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, always read back as an aware UTC datetime: SQLite keeps no zone (its
    values are UTC) and PostgreSQL answers in the session's zone, so every value read is
    normalised here, once, and what the API returns carries ``+00:00`` on both."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite would store an aware value with its offset as text; compared as text with the
        # naive UTC values already stored, ordering breaks: store it naive, in UTC, like the rest.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class EmailTemplate(Base):
    """A Jinja2 email template: subject, text and optional HTML part."""

    __tablename__ = "email_templates"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Rule(Base):
    """A marketer's rule; ``spec`` is its :class:`~ecrm_interaction.engine.rules.RuleSpec` as JSON."""

    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Action(Base):
    """One thing a rule decided to do for a customer, and what came of it (the decision log and
    the outbox in one): at most one per ``dedup_key``."""

    __tablename__ = "actions"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_actions_dedup_key"),
        Index("ix_actions_due", "status", "due_at"),
        Index("ix_actions_customer", "customer_id", "created_at"),
        Index("ix_actions_rule_customer", "rule_id", "customer_id"),
        # issue 18, rules-templates: the rules page's figures, counted from this index alone.
        Index("ix_actions_rule_figures", "rule_id", "created_at", "kind", "status", "reason"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(500))
    rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    customer_id: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(20))
    """``email``, ``webhook``, ``notify``, ``case``, ``points`` or ``reward``."""
    category: Mapped[str] = mapped_column(String(20), default="marketing")
    cause: Mapped[str] = mapped_column(String(300))
    """What fired the rule (``m:<message id>``, ``s:<segment event>``...)."""
    status: Mapped[str] = mapped_column(String(20))
    """``waiting`` (a rule's wait), ``pending``, ``deferred`` (quiet hours), then ``sent`` /
    ``done``, ``suppressed``, ``cancelled`` or ``failed``."""
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    payload: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str | None] = mapped_column(String(320), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    published: Mapped[str | None] = mapped_column(String(20), nullable=True)
    """The status last reported on Kafka."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class SkippedDecision(Base):
    """A rule that fired for a customer and did nothing, and why (cooldown, conditions not met,
    an event too old or superseded): one row per rule, customer and reason, counting how often
    (a later cause updates it; the same cause delivered again does not count twice)."""

    __tablename__ = "skipped_decisions"
    __table_args__ = (
        UniqueConstraint("rule_id", "customer_id", "reason", name="uq_skipped_rule_customer_reason"),
        Index("ix_skipped_customer", "customer_id", "last_at"),
        Index("ix_skipped_last_at", "last_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(40))
    """``cooldown``, ``conditions_not_met``, ``max_event_age`` or ``superseded``."""
    detail: Mapped[str] = mapped_column(String(300))
    """The reason in words, e.g. which condition failed."""
    cause: Mapped[str] = mapped_column(String(300))
    """The latest cause that was skipped so (``m:<message id>``, ``s:<segment event>``...)."""
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Customer(Base):
    """The latest profile the service has seen, and the customer's contact state."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    profile: Mapped[str | None] = mapped_column(Text, nullable=True)
    profile_version: Mapped[int] = mapped_column(Integer, default=-1)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    suppressed: Mapped[str | None] = mapped_column(String(20), nullable=True)
    """No longer written: suppressions belong to the address (:class:`AddressSuppression`);
    migration 0004 moved the customers' suppressions there."""
    suppressed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class AddressSuppression(Base):
    """An email address that must not be mailed (a hard bounce, a spam complaint, an operator's
    decision): the address's, not the customer's, so a customer who gives a new address is
    mailed there. Keyed by the address's digest
    (:func:`~ecrm_interaction.engine.contact_policy.address_digest`), the address itself is not kept.
    A lifted suppression keeps its row (``lifted_at``); the audit log says who lifted it and why."""

    __tablename__ = "address_suppressions"

    address_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    """``hard_bounce`` or ``complaint``."""
    source: Mapped[str] = mapped_column(String(200))
    """What reported it: ``event:<event name>:<message id>``, ``migration:0004``…"""
    suppressed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class OutboxEvent(Base):
    """An event to publish on the events topic, written in the transaction of the change it
    reports (a case opened or resolved through the API, a loyalty balance changed), so that it
    is published once the change is committed, and never without it."""

    __tablename__ = "event_outbox"
    __table_args__ = (
        UniqueConstraint("message_id", name="uq_event_outbox_message_id"),
        Index("ix_event_outbox_unpublished", "published_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(256), index=True)
    name: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(300))
    properties: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class CustomerSegment(Base):
    __tablename__ = "customer_segments"

    customer_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    segment_name: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime] = mapped_column(UtcDateTime())


class Consent(Base):
    __tablename__ = "consents"

    customer_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    purpose: Mapped[str] = mapped_column(String(100), primary_key=True, default="marketing")
    source: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class LoyaltyProgramRow(Base):
    __tablename__ = "loyalty_program"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class LoyaltyEntry(Base):
    """Points added or taken: the balance is their sum."""

    __tablename__ = "loyalty_ledger"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_loyalty_dedup_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(256), index=True)
    points: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Reward(Base):
    __tablename__ = "rewards"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_rewards_dedup_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(256), index=True)
    reward: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    points_cost: Mapped[int] = mapped_column(Integer, default=0)
    rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(500))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Case(Base):
    """A customer-service case, opened by a rule or through the API."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_cases_dedup_key"),
        Index("ix_cases_open_sla", "status", "sla_due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(256), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    priority: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))
    """``open``, ``pending`` or ``resolved``."""
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sla_due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    dedup_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class CaseNote(Base):
    __tablename__ = "case_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ScheduleState(Base):
    """The last slot each scheduled rule fired for."""

    __tablename__ = "schedule_state"

    rule_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_slot: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiToken(Base):
    """A REST API token: only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    """``admin``, ``marketer``, ``agent`` or ``viewer``."""
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AuditEntry(Base):
    """Every change made through the API or the CLI: who, what, when."""

    __tablename__ = "audit_log"
    # issue 18, rules-templates: a rule's history reads its entries by entity.
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id", "at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="{}")


class ConsoleUser(Base):
    """A person who signs in to the staff console: an argon2 hash of the password, never the
    password. Sessions are signed cookies; ``sessions_valid_after`` ends every session issued
    before it (sign-out, a password change, disabling the user)."""

    __tablename__ = "console_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    """``admin``, ``marketer``, ``agent`` or ``viewer``, as for API tokens."""
    password_hash: Mapped[str] = mapped_column(String(200))
    sessions_valid_after: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


# --- issue 18, cases-loyalty ---


class LoyaltyBalance(Base):
    """Each customer's points balance, kept with the ledger (the sum of their entries) so that
    members per tier are counted from one row per customer, not from every entry."""

    __tablename__ = "loyalty_balances"

    customer_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    points: Mapped[int] = mapped_column(Integer, index=True)


# --- issue 18, rules-templates ---------------------------------------------------------------


class TemplateVersion(Base):
    """One saved version of an email template (1, 2, …), written with the save; restoring a
    version saves it again as the newest."""

    __tablename__ = "template_versions"

    template_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    saved_at: Mapped[datetime] = mapped_column(UtcDateTime())
    saved_by: Mapped[str] = mapped_column(String(320))


# --- issue 18, broadcasts ------------------------------------------------------------------


class Broadcast(Base):
    """A one-off message to a segment: one template, or A/B variants each with a share, a
    holdout kept unsent, and a send rate. Its messages are ``actions`` rows (kind ``email``,
    dedup key ``broadcast:<id>:<customer>``) that the dispatcher sends like any other."""

    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    segment_id: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """The template of a broadcast without variants."""
    variants: Mapped[str] = mapped_column(Text)
    """JSON ``[{"name", "template", "share"}]``: one variant ``A`` when there is one template."""
    holdout_percent: Mapped[int] = mapped_column(Integer, default=0)
    winner_metric: Mapped[str] = mapped_column(String(20))
    """``clicks`` or ``conversions``."""
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """When its first messages are due (set when it is scheduled)."""
    status: Mapped[str] = mapped_column(String(20))
    """``draft``, ``scheduled``, ``paused`` or ``cancelled`` as stored; ``sending`` and ``done``
    are read from the time and its messages (see :mod:`ecrm_interaction.storage.broadcasts`)."""
    counts: Mapped[str] = mapped_column(Text, default="{}")
    """The audience (JSON: members, excluded by reason, groups, to send): as it was scheduled,
    or a draft's latest count with when it was counted (``counted_at``)."""
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class BroadcastRecipient(Base):
    """A segment member as a broadcast placed them when it was scheduled: in a variant (with
    the action that carries the message), in the holdout (no message), or excluded by the
    contact policy (with the reason)."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (Index("ix_broadcast_recipients_variant", "broadcast_id", "variant"),)

    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(20))
    """A variant's name, ``holdout`` or ``excluded``."""
    reason: Mapped[str | None] = mapped_column(String(100), nullable=True)
    action_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


# (end of broadcasts)


class SavedReport(Base):
    """A report a marketer saved with its filters. ``days`` set: a rolling range (the last
    ``days`` days up to the day it is shown or sent), else the saved ``since``/``until``."""

    __tablename__ = "saved_reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    report: Mapped[str] = mapped_column(String(50))
    params: Mapped[str] = mapped_column(Text, default="{}")
    """JSON: the report's filters as query strings (without the range when it rolls)."""
    days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Dashboard(Base):
    """Saved reports arranged in order (``reports``: JSON list of saved report ids)."""

    __tablename__ = "dashboards"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    reports: Mapped[str] = mapped_column(Text, default="[]")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class ReportSubscription(Base):
    """People who receive a saved report or a dashboard by email, daily, weekly or monthly at
    ``hour`` UTC. ``next_due_at`` is claimed by a conditional update before a send, so two
    replicas never send the same issue."""

    __tablename__ = "report_subscriptions"
    __table_args__ = (Index("ix_report_subscriptions_due", "enabled", "next_due_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target: Mapped[str] = mapped_column(String(20))
    """``report`` or ``dashboard``."""
    target_id: Mapped[str] = mapped_column(String(36))
    recipients: Mapped[str] = mapped_column(Text)
    """JSON list of email addresses (the shop's staff)."""
    cadence: Mapped[str] = mapped_column(String(10))
    """``daily``, ``weekly`` (on Mondays) or ``monthly`` (on the 1st)."""
    hour: Mapped[int] = mapped_column(Integer, default=7)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


# --- issue 20, the customer assistant -------------------------------------------------------


class KnowledgeArticle(Base):
    """One translation of a knowledge-base article (:mod:`ecrm_interaction.assistant.knowledge`)."""

    __tablename__ = "knowledge_articles"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    language: Mapped[str] = mapped_column(String(2), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    questions: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list: what customers ask that this article answers."""
    tags: Mapped[str] = mapped_column(Text, default="[]")
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Conversation(Base):
    """A visitor's chat with the assistant, and with people once handed off.

    ``status``: ``assistant`` (the bot answers), ``waiting`` (handed off, no person has replied
    yet), ``person`` (an agent replied: the bot is silent), ``closed``. The visitor holds a
    random token (its SHA-256 here) that every widget call presents: the conversation id alone
    reads nothing.
    """

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_started", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(String(256), index=True)
    """The verified user id, else the visitor's anonymous id."""
    identified: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(10))
    page: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="assistant")
    case_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    handed_off_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    contact_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    questions: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ConversationMessage(Base):
    """One message of a conversation; ``id`` grows, so the widget polls for ``id > last seen``."""

    __tablename__ = "conversation_messages"
    __table_args__ = (Index("ix_conversation_messages_unanswered", "author", "answered", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    author: Mapped[str] = mapped_column(String(10))
    """``visitor``, ``assistant`` or ``agent``."""
    kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    """Of the assistant's: ``greeting``, ``article``, ``data``, ``not_sure``, ``need_identity``,
    ``handed_off``, ``notice``."""
    language: Mapped[str | None] = mapped_column(String(10), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    article_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(30), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    answered: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    """Of a visitor's question: whether the assistant answered it."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
