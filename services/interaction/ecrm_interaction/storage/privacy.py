"""A privacy request's relational part: every row about a customer's identities, exported
(:func:`customer_records`) or deleted (:func:`erase_customer`). The shell is
:mod:`ecrm_interaction.privacy.requests`, which also erases the ClickHouse side.

Functions take the caller's session; :func:`erase_customer` writes and does not commit (the
caller's unit of work makes the erasure one transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage.models import (
    Action,
    AuditEntry,
    BroadcastRecipient,
    Case,
    CaseNote,
    Consent,
    Conversation,
    ConversationMessage,
    Customer,
    CustomerSegment,
    LoyaltyBalance,
    LoyaltyEntry,
    OutboxEvent,
    Reward,
    SkippedDecision,
)

CUSTOMER_TABLES = (Customer, CustomerSegment, Consent, Action, SkippedDecision, LoyaltyEntry, LoyaltyBalance, Reward,
                   Case, OutboxEvent, BroadcastRecipient, Conversation)  # fmt: skip
"""Every table with a ``customer_id`` (a test checks no model is missing); case notes, chat
messages and audit entries about a customer are found through these."""


def _row_dict(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _deleted(result: Any) -> int:
    return int(result.rowcount or 0)


def _audit_about(ids: list[str], case_ids: list[str]) -> Any:
    return select(AuditEntry).where(
        or_(
            (AuditEntry.entity == "customer") & AuditEntry.entity_id.in_(ids),
            (AuditEntry.entity == "case") & AuditEntry.entity_id.in_(case_ids),
        )
    )


def customer_records(session: Session, identities: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row about these ids, by table (the export of a privacy request)."""
    ids = list(identities)
    found = {
        model.__tablename__: [_row_dict(r) for r in session.scalars(select(model).where(model.customer_id.in_(ids)))]
        for model in CUSTOMER_TABLES
    }
    case_ids = [c["id"] for c in found[Case.__tablename__]]
    notes = session.scalars(select(CaseNote).where(CaseNote.case_id.in_(case_ids)))
    found[CaseNote.__tablename__] = [_row_dict(n) for n in notes]
    conversation_ids = [c["id"] for c in found[Conversation.__tablename__]]
    messages = session.scalars(
        select(ConversationMessage).where(ConversationMessage.conversation_id.in_(conversation_ids))
    )
    found[ConversationMessage.__tablename__] = [_row_dict(m) for m in messages]
    found[AuditEntry.__tablename__] = [_row_dict(a) for a in session.scalars(_audit_about(ids, case_ids))]
    return found


def erase_customer(
    session: Session, identities: Sequence[str], actor: str, reference: str, *, audit: bool = True
) -> dict[str, int]:
    """Delete every row about these ids; how many went, by table. The audit log keeps that an
    erasure happened, under ``reference`` (not the customer's id)."""
    ids = list(identities)
    deleted: dict[str, int] = {}
    case_ids = list(session.scalars(select(Case.id).where(Case.customer_id.in_(ids))))
    audit_ids = list(session.scalars(_audit_about(ids, case_ids).with_only_columns(AuditEntry.id)))
    deleted[CaseNote.__tablename__] = _deleted(session.execute(delete(CaseNote).where(CaseNote.case_id.in_(case_ids))))
    conversation_ids = select(Conversation.id).where(Conversation.customer_id.in_(ids)).scalar_subquery()
    deleted[ConversationMessage.__tablename__] = _deleted(
        session.execute(delete(ConversationMessage).where(ConversationMessage.conversation_id.in_(conversation_ids)))
    )
    for model in CUSTOMER_TABLES:
        deleted[model.__tablename__] = _deleted(session.execute(delete(model).where(model.customer_id.in_(ids))))
    deleted[AuditEntry.__tablename__] = _deleted(
        session.execute(delete(AuditEntry).where(AuditEntry.id.in_(audit_ids)))
    )
    if audit:
        audit_log.record(session, actor, "erase", "customer", reference, {"identities": len(ids), "rows": deleted})
    return deleted
