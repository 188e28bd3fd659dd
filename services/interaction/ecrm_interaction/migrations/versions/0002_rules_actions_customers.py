"""Rules as full specs, the actions log and outbox, customers and their contact state,
segments, consent, loyalty, cases, schedules, API tokens and the audit log.

Rules of revision 0001 become specs (their trigger event and template); their sends become
email actions with keys that keep protecting against a second send.

Revision ID: 0002
Revises: 0001
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dedup_key", sa.String(500), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=True),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("cause", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("published", sa.String(20), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("done_at", TS, nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_actions_dedup_key"),
    )
    op.create_index("ix_actions_due", "actions", ["status", "due_at"])
    op.create_index("ix_actions_customer", "actions", ["customer_id", "created_at"])
    op.create_index("ix_actions_rule_customer", "actions", ["rule_id", "customer_id"])
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(256), primary_key=True),
        sa.Column("profile", sa.Text(), nullable=True),
        sa.Column("profile_version", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("unsubscribed_at", TS, nullable=True),
        sa.Column("suppressed", sa.String(20), nullable=True),
        sa.Column("suppressed_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_customers_email", "customers", ["email"])
    op.create_table(
        "customer_segments",
        sa.Column("customer_id", sa.String(256), primary_key=True),
        sa.Column("segment_id", sa.String(64), primary_key=True),
        sa.Column("segment_name", sa.String(200), nullable=False),
        sa.Column("since", TS, nullable=False),
    )
    op.create_index("ix_customer_segments_segment_id", "customer_segments", ["segment_id"])
    op.create_table(
        "consents",
        sa.Column("customer_id", sa.String(256), primary_key=True),
        sa.Column("channel", sa.String(20), primary_key=True),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "loyalty_program",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "loyalty_ledger",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=True),
        sa.Column("dedup_key", sa.String(500), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_loyalty_dedup_key"),
    )
    op.create_index("ix_loyalty_ledger_customer_id", "loyalty_ledger", ["customer_id"])
    op.create_table(
        "rewards",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("reward", sa.String(100), nullable=False),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("points_cost", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=True),
        sa.Column("dedup_key", sa.String(500), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_rewards_dedup_key"),
    )
    op.create_index("ix_rewards_customer_id", "rewards", ["customer_id"])
    op.create_table(
        "cases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("assignee", sa.String(200), nullable=True),
        sa.Column("sla_due_at", TS, nullable=False),
        sa.Column("escalated_at", TS, nullable=True),
        sa.Column("rule_id", sa.String(100), nullable=True),
        sa.Column("dedup_key", sa.String(500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_cases_dedup_key"),
    )
    op.create_index("ix_cases_customer_id", "cases", ["customer_id"])
    op.create_index("ix_cases_open_sla", "cases", ["status", "sla_due_at"])
    op.create_table(
        "case_notes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_case_notes_case_id", "case_notes", ["case_id"])
    op.create_table(
        "schedule_state",
        sa.Column("rule_id", sa.String(100), primary_key=True),
        sa.Column("last_slot", TS, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("entity", sa.String(50), nullable=False),
        sa.Column("entity_id", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    _rules_become_specs()
    _sends_become_actions()


def _rules_become_specs() -> None:
    connection = op.get_bind()
    with op.batch_alter_table("rules") as batch:
        batch.add_column(sa.Column("spec", sa.Text(), nullable=True))
    rules = sa.table(
        "rules",
        sa.column("id"),
        sa.column("name"),
        sa.column("enabled"),
        sa.column("trigger_event"),
        sa.column("template_id"),
        sa.column("once_per_customer"),
        sa.column("spec"),
    )
    for row in connection.execute(sa.select(rules)).mappings().all():
        spec = {
            "id": row["id"],
            "name": row["name"],
            "enabled": bool(row["enabled"]),
            "trigger": {"kind": "event", "event": row["trigger_event"]},
            "once_per_customer": bool(row["once_per_customer"]),
            "actions": [{"kind": "email", "template": row["template_id"]}],
        }
        connection.execute(sa.update(rules).where(rules.c.id == row["id"]).values(spec=json.dumps(spec)))
    with op.batch_alter_table("rules") as batch:
        batch.alter_column("spec", existing_type=sa.Text(), nullable=False)
        batch.drop_column("trigger_event")
        batch.drop_column("template_id")
        batch.drop_column("once_per_customer")


def _sends_become_actions() -> None:
    connection = op.get_bind()
    sends = sa.table(
        "sends",
        *(
            sa.column(c)
            for c in (
                "id",
                "dedup_key",
                "rule_id",
                "customer_id",
                "trigger_message_id",
                "recipient",
                "subject",
                "status",
                "reason",
                "created_at",
                "sent_at",
            )
        ),
    )
    actions = sa.table(
        "actions",
        *(
            sa.column(c)
            for c in (
                "id",
                "dedup_key",
                "rule_id",
                "customer_id",
                "kind",
                "category",
                "cause",
                "status",
                "reason",
                "due_at",
                "payload",
                "recipient",
                "subject",
                "attempts",
                "published",
                "created_at",
                "updated_at",
                "done_at",
            )
        ),
    )
    statuses = {"sent": "sent", "skipped": "suppressed", "failed": "failed", "pending": "failed"}
    now = datetime.now(UTC)
    for send in connection.execute(sa.select(sends)).mappings().all():
        rule_id, customer, message_id = send["rule_id"], send["customer_id"], send["trigger_message_id"]
        once = send["dedup_key"] == f"{rule_id}:{customer}"
        key = f"{rule_id}:{customer}:0" if once else f"{rule_id}:{customer}:m:{message_id}:0"
        status = statuses.get(send["status"], "failed")
        reason = send["reason"] if send["status"] != "pending" else "left pending by revision 0001"
        connection.execute(
            sa.insert(actions).values(
                id=send["id"],
                dedup_key=key,
                rule_id=rule_id,
                customer_id=customer,
                kind="email",
                category="marketing",
                cause=f"m:{message_id}",
                status=status,
                reason=reason,
                due_at=send["created_at"],
                payload="{}",
                recipient=send["recipient"],
                subject=send["subject"],
                attempts=1,
                published=status,
                created_at=send["created_at"],
                updated_at=now,
                done_at=send["sent_at"],
            )
        )
    op.drop_table("sends")


def downgrade() -> None:
    raise NotImplementedError("0002 is not reversible: restore the database from a backup instead")
