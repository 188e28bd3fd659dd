"""``case``: open a customer-service case (once per action), the triggering comment as its first note.

On ``Conversation Handed Off`` the chat has opened its case already: a rule's case action then
sets that case's priority (raising it, never lowering) and assignee instead of opening a second
one, so "a VIP's question is urgent" is a rule like any other."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel

from ecrm_interaction.delivery.actions.base import Job, Outcome, Wiring, action_completed, done, render_failed
from ecrm_interaction.engine.rendering import RenderError, message_context, render_text
from ecrm_interaction.engine.rules import CaseAction
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage.cases import PRIORITY_RANK, UNSET, CaseChange, CaseOpening
from ecrm_interaction.storage.models import Action, Case
from ecrm_schemas.actions import ActionKind
from ecrm_schemas.catalog import CatalogEvent

if TYPE_CHECKING:
    from ecrm_interaction.storage.store import Store

COMMENT_PROPERTIES: dict[str, str] = {CatalogEvent.NPS_ANSWERED: "comment", CatalogEvent.SURVEY_ANSWERED: "text"}
"""The property that holds a customer's own words, by event: the first note of a case it opens."""


def customer_comment(trigger: dict[str, Any]) -> tuple[str, str] | None:
    """(author, text) of the comment in a rule's triggering event, if it has one."""
    name = trigger.get("event")
    comment = (trigger.get("properties") or {}).get(COMMENT_PROPERTIES.get(name or "", ""))
    if isinstance(comment, str) and comment.strip():
        return f"customer ({name})", comment.strip()[:10_000]
    return None


class CaseExecutor:
    kind: ClassVar[ActionKind] = ActionKind.CASE
    spec: ClassVar[type[BaseModel]] = CaseAction
    channel: ClassVar[str | None] = None

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def build(cls, wiring: Wiring) -> Self:
        return cls(wiring.store)

    async def execute(self, job: Job) -> Outcome:
        return await asyncio.to_thread(self._open, job)

    def _open(self, job: Job) -> Outcome:
        spec, action = job.spec, job.action
        assert isinstance(spec, CaseAction)
        try:
            subject = render_text(spec.subject, message_context(job.payload, rule_id=action.rule_id or ""))
        except RenderError as exc:
            raise render_failed(action, exc, part="subject") from exc
        trigger = job.payload.get("trigger") or {}
        handed_off = (trigger.get("properties") or {}).get("case_id")
        if trigger.get("event") == CatalogEvent.CONVERSATION_HANDED_OFF and handed_off:
            return self._route(job, spec, str(handed_off), subject)
        with self.store.sessions.begin() as session:
            opening = CaseOpening(
                customer_id=action.customer_id,
                subject=subject[:300],
                priority=spec.priority,
                sla=spec.sla,
                assignee=spec.assignee,
                rule_id=action.rule_id,
                dedup_key=action.dedup_key,
                note=customer_comment(job.payload.get("trigger") or {}),
            )
            case_id = case_store.open_case(session, opening, job.now)
        return done("case opened" if case_id else "case already open", subject=subject[:500], recipient=case_id)

    def _route(self, job: Job, spec: CaseAction, case_id: str, subject: str) -> Outcome:
        with self.store.sessions.begin() as session:
            found = session.get(Case, case_id)
            if found is None:
                return done("handed-off case not found", subject=subject[:500], recipient=case_id)
            raise_to = spec.priority if PRIORITY_RANK[spec.priority] < PRIORITY_RANK[found.priority] else UNSET
            change = CaseChange(priority=raise_to, assignee=spec.assignee if spec.assignee else UNSET)
            case_store.update_case(session, case_id, change, f"rule {job.action.rule_id}", job.now)
        return done("handed-off case routed", subject=subject[:500], recipient=case_id)

    @staticmethod
    def completed(action: Action, spec: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        # ``Case Opened`` itself comes from the case's own outbox event.
        return action_completed(action, base, case_id=action.recipient)
