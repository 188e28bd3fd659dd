"""Rules, email templates and sends.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_templates",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rules",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("trigger_event", sa.String(200), nullable=False),
        sa.Column("template_id", sa.String(100), sa.ForeignKey("email_templates.id"), nullable=False),
        sa.Column("once_per_customer", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sends",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dedup_key", sa.String(400), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("trigger_message_id", sa.String(256), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_sends_dedup_key"),
    )
    op.create_index("ix_sends_rule_id", "sends", ["rule_id"])
    op.create_index("ix_sends_customer_id", "sends", ["customer_id"])


def downgrade() -> None:
    op.drop_table("sends")
    op.drop_table("rules")
    op.drop_table("email_templates")
