"""The website chat's conversations as staff see them: the list, one with its messages, an
agent's reply (it reaches the widget; the assistant then stays silent), and how the assistant
does: answer and hand-off rates, resolution without a person, ratings, and the unanswered
questions grouped by similarity (what to write next)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from ecrm_interaction.api.deps import Agent, SessionDep, Viewer
from ecrm_interaction.api.services.assistant import Assistant
from ecrm_interaction.assistant.grouping import group_questions
from ecrm_interaction.storage import conversations
from ecrm_interaction.storage.conversations import ConversationFilter
from ecrm_interaction.storage.models import Conversation, ConversationMessage

Status = Literal["assistant", "waiting", "person", "closed"]


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class StaffMessage(BaseModel):
    id: int
    author: str
    kind: str | None
    text: str
    agent: str | None
    article_id: str | None
    intent: str | None
    confidence: float | None
    answered: bool | None
    created_at: datetime

    @classmethod
    def of(cls, m: ConversationMessage) -> StaffMessage:
        return cls(
            id=m.id,
            author=m.author,
            kind=m.kind,
            text=m.text,
            agent=m.agent,
            article_id=m.article_id,
            intent=m.intent,
            confidence=m.confidence,
            answered=m.answered,
            created_at=m.created_at,
        )


class ConversationView(BaseModel):
    id: str
    customer_id: str
    identified: bool
    language: str
    page: str | None
    status: str
    case_id: str | None
    contact_email: str | None
    rating: int | None
    questions: int
    answered: int
    started_at: datetime
    last_message_at: datetime
    messages: list[StaffMessage] | None = None

    @classmethod
    def of(cls, c: Conversation, messages: list[ConversationMessage] | None = None) -> ConversationView:
        return cls(
            id=c.id,
            customer_id=c.customer_id,
            identified=c.identified,
            language=c.language,
            page=c.page,
            status=c.status,
            case_id=c.case_id,
            contact_email=c.contact_email,
            rating=c.rating,
            questions=c.questions,
            answered=c.answered,
            started_at=c.started_at,
            last_message_at=c.last_message_at,
            messages=[StaffMessage.of(m) for m in messages] if messages is not None else None,
        )


def router(assistant: Assistant) -> APIRouter:
    routes = APIRouter(tags=["conversations"])

    def found(session: SessionDep, conversation_id: str) -> Conversation:
        conversation = conversations.get(session, conversation_id)
        if conversation is None:
            raise HTTPException(404, "conversation_not_found")
        return conversation

    @routes.get("/v1/conversations")
    def list_conversations(
        _who: Viewer,
        session: SessionDep,
        status: Status | None = None,
        customer_id: str | None = None,
        case_id: str | None = None,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[ConversationView]:
        """Conversations started in the last ``days``, the latest message first (``case_id``: the
        one handed off as that case, whenever it started)."""
        since = None if case_id else datetime.now(UTC) - timedelta(days=days)
        wanted = ConversationFilter(status, since, customer_id, case_id, limit, offset)
        return [ConversationView.of(c) for c in conversations.listed(session, wanted)]

    @routes.get("/v1/conversations/{conversation_id}")
    def get_conversation(conversation_id: str, _who: Viewer, session: SessionDep) -> ConversationView:
        conversation = found(session, conversation_id)
        return ConversationView.of(conversation, conversations.messages(session, conversation.id, limit=1000))

    @routes.post("/v1/conversations/{conversation_id}/replies", status_code=201)
    def reply(conversation_id: str, body: ReplyIn, who: Agent, session: SessionDep) -> StaffMessage:
        """Answer the visitor: the widget shows it at its next poll, and the assistant stays silent."""
        conversation = found(session, conversation_id)
        if conversation.status == "closed":
            raise HTTPException(409, "conversation_closed")
        return StaffMessage.of(conversations.agent_reply(session, conversation, who.name, body.text, datetime.now(UTC)))

    @routes.get("/v1/assistant/figures")
    def figures(_who: Viewer, session: SessionDep, days: Annotated[int, Query(ge=1, le=366)] = 30) -> dict[str, Any]:
        """How the assistant did over the last ``days``."""
        since = datetime.now(UTC) - timedelta(days=days)
        return {"days": days, **conversations.figures(session, since), "assistant": assistant.describe()}

    @routes.get("/v1/assistant/unanswered")
    def unanswered(
        _who: Viewer,
        session: SessionDep,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[dict[str, Any]]:
        """The questions the assistant could not answer, grouped by similarity, the largest group first."""
        rows = conversations.unanswered_questions(session, datetime.now(UTC) - timedelta(days=days), limit=1000)
        texts = [r.text for r in rows]
        vectors = assistant.question_vectors(session, texts)
        return [
            {"example": g.example, "count": len(g.questions), "questions": list(g.questions[:20])}
            for g in group_questions(texts, vectors)[:limit]
        ]

    return routes
