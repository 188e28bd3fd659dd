"""Broadcasts: one-off messages to a segment, with A/B variants and a holdout, and where each
member of the segment was placed.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("segment_id", sa.String(64), nullable=False),
        sa.Column("template_id", sa.String(100), nullable=True),
        sa.Column("variants", sa.Text(), nullable=False),
        sa.Column("holdout_percent", sa.Integer(), nullable=False),
        sa.Column("winner_metric", sa.String(20), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_broadcasts_created", "broadcasts", ["created_at"])
    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.String(36), sa.ForeignKey("broadcasts.id"), primary_key=True),
        sa.Column("customer_id", sa.String(256), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100), nullable=True),
        sa.Column("action_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_broadcast_recipients_variant", "broadcast_recipients", ["broadcast_id", "variant"])


def downgrade() -> None:
    op.drop_index("ix_broadcast_recipients_variant", "broadcast_recipients")
    op.drop_table("broadcast_recipients")
    op.drop_index("ix_broadcasts_created", "broadcasts")
    op.drop_table("broadcasts")
