"""Relational state of the interaction service (SQLAlchemy 2). Schema changes go through Alembic."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class EmailTemplate(Base):
    """A Jinja2 email template: subject, text and optional HTML part."""

    __tablename__ = "email_templates"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Rule(Base):
    """When an event happens to a customer, send them an email template."""

    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    trigger_event: Mapped[str] = mapped_column(String(200))
    """An event type (``identify``, ``page``...) or a track event name (``Order Completed``)."""
    template_id: Mapped[str] = mapped_column(ForeignKey("email_templates.id"))
    once_per_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Send(Base):
    """One decision to email a customer, and what came of it."""

    __tablename__ = "sends"
    __table_args__ = (UniqueConstraint("dedup_key", name="uq_sends_dedup_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(400))
    """At most one send per key: (rule, customer) or (rule, customer, triggering event)."""
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    customer_id: Mapped[str] = mapped_column(String(256), index=True)
    trigger_message_id: Mapped[str] = mapped_column(String(256))
    recipient: Mapped[str | None] = mapped_column(String(320), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    """``pending``, ``sent``, ``skipped`` or ``failed``."""
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
