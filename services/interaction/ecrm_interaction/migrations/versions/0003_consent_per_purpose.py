"""Consent per channel and purpose: the key of ``consents`` takes the purpose in.

A customer may agree to marketing email and refuse, say, profiling by email; until now the
latest of the two overwrote the other. Existing rows keep their purpose.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


COLUMNS = "customer_id, channel, granted, purpose, source, updated_at"


def upgrade() -> None:
    op.create_table(
        "consents_by_purpose",
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "channel", "purpose", name="pk_consents"),
    )
    op.execute(f"INSERT INTO consents_by_purpose ({COLUMNS}) SELECT {COLUMNS} FROM consents")
    op.drop_table("consents")
    op.rename_table("consents_by_purpose", "consents")


def downgrade() -> None:
    raise NotImplementedError("consent rows of several purposes per channel cannot be folded back into one")
