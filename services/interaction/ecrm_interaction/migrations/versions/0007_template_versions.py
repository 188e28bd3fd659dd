"""Template versions: every saved version of an email template, kept for history and restore;
the audit log indexed by entity (a rule's history), the actions by rule and time (its figures).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("template_id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("text_body", sa.Text, nullable=False),
        sa.Column("html_body", sa.Text, nullable=True),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("saved_by", sa.String(320), nullable=False),
    )
    op.create_index("ix_audit_entity", "audit_log", ["entity", "entity_id", "at"])
    op.create_index("ix_actions_rule_figures", "actions", ["rule_id", "created_at", "kind", "status", "reason"])
    # The templates saved before versions were kept become their version 1.
    op.execute(
        "INSERT INTO template_versions (template_id, version, subject, text_body, html_body, saved_at, saved_by) "
        "SELECT id, 1, subject, text_body, html_body, COALESCE(updated_at, CURRENT_TIMESTAMP), 'before versions' "
        "FROM email_templates"
    )


def downgrade() -> None:
    op.drop_index("ix_actions_rule_figures", table_name="actions")
    op.drop_index("ix_audit_entity", table_name="audit_log")
    op.drop_table("template_versions")
