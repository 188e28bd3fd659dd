"""The typed answers more than one route gives (an action, a decision, a case, a suppression, a segment)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage.models import Action, Case, CaseNote, SkippedDecision
from ecrm_interaction.storage.store import aware
from ecrm_schemas.segments import SegmentDefinition, explain


class ActionView(BaseModel):
    id: str
    rule_id: str | None
    customer_id: str
    kind: str
    category: str
    cause: str
    status: str
    reason: str | None
    due_at: datetime
    recipient: str | None
    subject: str | None
    attempts: int
    created_at: datetime
    done_at: datetime | None

    @classmethod
    def of(cls, action: Action) -> ActionView:
        view = cls.model_validate(action, from_attributes=True)
        return view.model_copy(update={k: aware(getattr(view, k)) for k in ("due_at", "created_at", "done_at")})


class DecisionView(BaseModel):
    """A decision: an action a rule planned, with its outcome and reason, or a firing that did
    nothing (``status: skipped``, no ``kind``; ``count`` times for this rule, customer and reason,
    the latest at ``done_at``)."""

    id: str
    rule_id: str | None
    customer_id: str
    kind: str | None
    category: str | None
    cause: str
    status: str
    reason: str | None
    detail: str | None = None
    """For skips: the reason in words (which condition failed, how old the event was)."""
    due_at: datetime | None
    recipient: str | None
    subject: str | None
    attempts: int
    count: int = 1
    created_at: datetime
    done_at: datetime | None

    @classmethod
    def of(cls, row: Action | SkippedDecision) -> DecisionView:
        if isinstance(row, Action):
            return cls.model_validate(ActionView.of(row).model_dump())
        return cls(
            id=row.id, rule_id=row.rule_id, customer_id=row.customer_id, kind=None, category=None,
            cause=row.cause, status="skipped", reason=row.reason, detail=row.detail, due_at=None,
            recipient=None, subject=None, attempts=0, count=row.count,
            created_at=aware(row.first_at), done_at=aware(row.last_at),
        )  # type: ignore[arg-type]  # fmt: skip


class SendView(BaseModel):
    """An email action, as ``/v1/sends`` has listed them since the first version."""

    id: str
    rule_id: str | None
    customer_id: str
    trigger_message_id: str
    status: str
    reason: str | None
    subject: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, a: Action) -> SendView:
        return cls(
            id=a.id,
            rule_id=a.rule_id,
            customer_id=a.customer_id,
            trigger_message_id=a.cause.partition(":")[2],
            status=a.status,
            reason=a.reason,
            subject=a.subject,
            created_at=aware(a.created_at),  # type: ignore[arg-type]
            sent_at=aware(a.done_at) if a.status == "sent" else None,
        )


class CaseView(BaseModel):
    id: str
    customer_id: str
    subject: str
    priority: str
    status: str
    assignee: str | None
    sla_due_at: datetime
    escalated_at: datetime | None
    rule_id: str | None
    created_at: datetime
    resolved_at: datetime | None
    notes: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, case: Case, notes: list[CaseNote] | None = None) -> CaseView:
        view = cls.model_validate(case, from_attributes=True)
        view.notes = [{"author": n.author, "text": n.text, "at": aware(n.created_at)} for n in notes or []]
        return view

    @classmethod
    def many(cls, session: Session, cases: list[Case]) -> list[CaseView]:
        """Views of ``cases`` with their notes (one query for all the notes)."""
        notes = case_store.case_notes(session, [c.id for c in cases])
        return [cls.of(c, notes[c.id]) for c in cases]


class SuppressionView(BaseModel):
    address_digest: str
    reason: str
    source: str
    suppressed_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None


class SegmentView(SegmentDefinition):
    """A segment definition as the aggregators evaluate it, with its condition in words."""

    summary: str

    @classmethod
    def of(cls, definition: SegmentDefinition) -> SegmentView:
        return cls(**dict(definition), summary=explain(definition.condition))
