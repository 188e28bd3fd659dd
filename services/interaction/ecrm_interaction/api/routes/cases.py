"""Support cases: list, open, read, change, and add notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from ecrm_interaction.api.deps import Agent, SessionDep, SettingsDep, Viewer
from ecrm_interaction.api.views import CaseView
from ecrm_interaction.storage import audit, cases, conversations
from ecrm_interaction.storage.cases import UNSET, CaseChange, CaseOpening

Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["open", "pending", "resolved"]
STATUSES: tuple[str, ...] = get_args(Status)
Assignee = Annotated[str, Field(min_length=1, max_length=200)]
"""Who works a case (a console user's email, or any name); ``null``: nobody."""


class NewCase(BaseModel):
    customer_id: str = Field(min_length=1, max_length=256)
    subject: str = Field(min_length=1, max_length=300)
    priority: Priority = "normal"
    sla_hours: float = Field(default=24, gt=0, le=24 * 90)
    assignee: Assignee | None = None


class CaseUpdate(BaseModel):
    status: Status | None = None
    priority: Priority | None = None
    assignee: Assignee | None = None

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
        _who: Viewer,
        session: SessionDep,
        customer_id: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        unassigned: bool = False,
        priority: Priority | None = None,
        order: Literal["newest", "queue"] = "newest",
        limit: int = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[CaseView]:
        """Cases, each with its notes: the newest first, or (``order=queue``) as agents work
        them: the unresolved ones past their SLA first, then by priority (urgent first), then
        by SLA due time. Filters: ``customer_id``, ``status`` (one, or several comma-separated:
        ``open,pending``), ``assignee`` (who works it) or ``unassigned=true``, ``priority``;
        a page of ``limit`` (at most 1000) from ``offset``."""
        statuses = tuple(s.strip() for s in (status or "").split(",") if s.strip())
        if unknown := [s for s in statuses if s not in STATUSES]:
            raise HTTPException(422, {"code": "invalid_request", "message": "unknown status", "errors": [
                {"field": "status", "rule": "literal_error",
                 "message": f"{unknown[0]!r} is not a status; use {', '.join(STATUSES)}"}]})  # fmt: skip
        wanted = cases.QueueFilter(
            statuses, assignee, unassigned, priority, customer_id, min(max(limit, 1), 1000), offset
        )
        found = cases.queue(session, wanted, datetime.now(UTC), newest_first=order == "newest")
        return CaseView.many(session, found)

    @routes.get("/v1/cases/summary")
    def case_summary(_who: Viewer, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
        """How many unresolved cases are open, pending, past their SLA (``overdue``), escalated
        and unassigned, and who hears of a case past its SLA (``escalation_email``; none: no one)."""
        counts: dict[str, Any] = cases.summary(session, datetime.now(UTC))
        return counts | {"escalation_email": settings.interaction_escalation_email}

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
        if update.status == "resolved":
            conversations.close_for_case(session, case_id)
        return found(session, case_id)

    @routes.post("/v1/cases/{case_id}/notes", status_code=201)
    def add_note(case_id: str, note: NoteIn, who: Agent, session: SessionDep) -> CaseView:
        if cases.add_note(session, case_id, who.name, note.text, datetime.now(UTC)) is None:
            raise HTTPException(404, "case_not_found")
        return found(session, case_id)

    return routes
