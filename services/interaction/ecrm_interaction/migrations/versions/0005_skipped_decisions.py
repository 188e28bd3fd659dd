"""Skipped decisions: a rule that fired and did nothing (cooldown, conditions not met, an event
too old or superseded) is recorded once per rule, customer and reason, with a count.

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "skipped_decisions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(300), nullable=False),
        sa.Column("cause", sa.String(300), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("rule_id", "customer_id", "reason", name="uq_skipped_rule_customer_reason"),
    )
    op.create_index("ix_skipped_customer", "skipped_decisions", ["customer_id", "last_at"])
    op.create_index("ix_skipped_last_at", "skipped_decisions", ["last_at"])


def downgrade() -> None:
    op.drop_table("skipped_decisions")
