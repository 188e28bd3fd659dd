"""Loyalty balances: each customer's points, kept with the ledger (members per tier, issue 18).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loyalty_balances",
        sa.Column("customer_id", sa.String(256), primary_key=True),
        sa.Column("points", sa.Integer(), nullable=False),
    )
    op.create_index("ix_loyalty_balances_points", "loyalty_balances", ["points"])
    op.execute(
        "INSERT INTO loyalty_balances (customer_id, points) "
        "SELECT customer_id, SUM(points) FROM loyalty_ledger GROUP BY customer_id"
    )


def downgrade() -> None:
    op.drop_index("ix_loyalty_balances_points", "loyalty_balances")
    op.drop_table("loyalty_balances")
