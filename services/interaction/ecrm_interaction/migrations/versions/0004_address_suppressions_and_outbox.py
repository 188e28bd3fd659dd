"""Suppressions belong to the address, not the customer; an outbox for the events the API and
the loyalty ledger report.

``address_suppressions``: one row per suppressed address (its digest), with reason, source and
time; the hard bounces and complaints recorded on customers move there (the customer's address
at the time is the one that bounced). ``event_outbox``: events written in the transaction of
the change they report, published by the dispatcher.

Revision ID: 0004
Revises: 0003
"""

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_NAMESPACE = b"ecrm-address:v1:"  # frozen copy of contact_policy.address_digest


def _digest(address: str) -> str:
    return hashlib.sha256(_NAMESPACE + address.strip().lower().encode()).hexdigest()


def upgrade() -> None:
    suppressions = op.create_table(
        "address_suppressions",
        sa.Column("address_digest", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("suppressed_at", TS, nullable=False),
        sa.Column("lifted_at", TS, nullable=True),
        sa.Column("lifted_by", sa.String(100), nullable=True),
    )
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(300), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.UniqueConstraint("message_id", name="uq_event_outbox_message_id"),
    )
    op.create_index("ix_event_outbox_customer_id", "event_outbox", ["customer_id"])
    op.create_index("ix_event_outbox_unpublished", "event_outbox", ["published_at", "created_at"])
    rows = op.get_bind().execute(
        sa.text(
            "SELECT email, suppressed, suppressed_at FROM customers WHERE suppressed IS NOT NULL AND email IS NOT NULL"
        )
    )
    moved: dict[str, dict[str, object]] = {}
    for email, reason, at in rows:
        if isinstance(at, str):  # SQLite's text
            at = datetime.fromisoformat(at)
        moved.setdefault(
            _digest(email),
            {
                "address_digest": _digest(email),
                "reason": reason,
                "source": "migration:0004",
                "suppressed_at": at or datetime.now(UTC),
            },
        )
    if moved:
        op.bulk_insert(suppressions, list(moved.values()))


def downgrade() -> None:
    op.drop_table("event_outbox")
    op.drop_table("address_suppressions")
