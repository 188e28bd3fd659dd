"""The customer assistant: knowledge-base articles, conversations and their messages (issue 20).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_articles",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("language", sa.String(2), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("questions", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(256), nullable=False),
        sa.Column("identified", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(10), nullable=False),
        sa.Column("page", sa.String(2000), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=True),
        sa.Column("handed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contact_email", sa.String(320), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_conversations_customer_id", "conversations", ["customer_id"])
    op.create_index("ix_conversations_case_id", "conversations", ["case_id"])
    op.create_index("ix_conversations_started", "conversations", ["started_at"])
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(36), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("author", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("language", sa.String(10), nullable=True),
        sa.Column("agent", sa.String(200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("article_id", sa.String(100), nullable=True),
        sa.Column("intent", sa.String(30), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("answered", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_conversation_messages_conversation_id", "conversation_messages", ["conversation_id"])
    op.create_index(
        "ix_conversation_messages_unanswered", "conversation_messages", ["author", "answered", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_messages_unanswered", "conversation_messages")
    op.drop_index("ix_conversation_messages_conversation_id", "conversation_messages")
    op.drop_table("conversation_messages")
    op.drop_index("ix_conversations_started", "conversations")
    op.drop_index("ix_conversations_case_id", "conversations")
    op.drop_index("ix_conversations_customer_id", "conversations")
    op.drop_table("conversations")
    op.drop_table("knowledge_articles")
