"""Support cases: list, open, read, change, and add notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from ecrm_interaction.api.deps import Agent, SessionDep, Viewer
from ecrm_interaction.api.views import CaseView
from ecrm_interaction.storage import audit, cases
from ecrm_interaction.storage.cases import UNSET, CaseChange, CaseOpening

Priority = Literal["low", "normal", "high", "urgent"]


class NewCase(BaseModel):
    customer_id: str = Field(min_length=1, max_length=256)
    subject: str = Field(min_length=1, max_length=300)
    priority: Priority = "normal"
    sla_hours: float = Field(default=24, gt=0, le=24 * 90)
    assignee: str | None = None


class CaseUpdate(BaseModel):
    status: Literal["open", "pending", "resolved"] | None = None
    priority: Priority | None = None
    assignee: str | None = None

    def change(self) -> CaseChange:
        """The fields sent, as a change (a field not sent stays as it is; ``null`` is a value)."""
        sent = self.model_dump(exclude_unset=True)
        return CaseChange(**{name: sent.get(name, UNSET) for name in ("status", "priority", "assignee")})


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


def router() -> APIRouter:
    routes = APIRouter(tags=["cases"])

    def found(session: SessionDep, case_id: str) -> CaseView:
        row = cases.case(session, case_id)
        if row is None:
            raise HTTPException(404, "case_not_found")
        return CaseView.of(*row)

    @routes.get("/v1/cases")
    def list_cases(
        _who: Viewer, session: SessionDep, customer_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[CaseView]:
        """Cases, newest first, each with its notes."""
        return CaseView.many(session, cases.cases(session, customer_id, status, min(max(limit, 1), 1000)))

    @routes.post("/v1/cases", status_code=201)
    def create_case(new: NewCase, who: Agent, session: SessionDep) -> CaseView:
        """Open a case (reported as a ``Case Opened`` event)."""
        opening = CaseOpening(
            customer_id=new.customer_id,
            subject=new.subject,
            priority=new.priority,
            sla=timedelta(hours=new.sla_hours),
            assignee=new.assignee,
        )
        case_id = cases.open_case(session, opening, datetime.now(UTC))
        assert case_id is not None  # no dedup key: always new
        audit.record(session, who.name, "create", "case", case_id, new.model_dump())
        return found(session, case_id)

    @routes.get("/v1/cases/{case_id}")
    def get_case(case_id: str, _who: Viewer, session: SessionDep) -> CaseView:
        return found(session, case_id)

    @routes.patch("/v1/cases/{case_id}")
    def update_case(case_id: str, update: CaseUpdate, who: Agent, session: SessionDep) -> CaseView:
        """Change a case's status, priority or assignee (reported as ``Case Updated``, or
        ``Case Resolved`` when it is resolved; a change that changes nothing reports nothing)."""
        if cases.update_case(session, case_id, update.change(), who.name, datetime.now(UTC)) is None:
            raise HTTPException(404, "case_not_found")
        return found(session, case_id)

    @routes.post("/v1/cases/{case_id}/notes", status_code=201)
    def add_note(case_id: str, note: NoteIn, who: Agent, session: SessionDep) -> CaseView:
        if cases.add_note(session, case_id, who.name, note.text, datetime.now(UTC)) is None:
            raise HTTPException(404, "case_not_found")
        return found(session, case_id)

    return routes
