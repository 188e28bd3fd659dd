"""Conversations of the website assistant and their messages. Each step is reported as a
catalog event through the outbox, in the same transaction (``Conversation Started``, ``Question
Answered`` / ``Question Unanswered``, ``Conversation Handed Off``, ``Conversation Rated``).
Functions take the caller's session and never commit."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ecrm_interaction.engine.triggers import OWN_EVENTS
from ecrm_interaction.storage import audit, cases, outbox
from ecrm_interaction.storage.cases import CaseOpening
from ecrm_interaction.storage.models import Conversation, ConversationMessage
from ecrm_schemas.catalog import CatalogEvent

STATUSES = ("assistant", "waiting", "person", "closed")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _event(
    session: Session, conversation: Conversation, name: str, suffix: str, properties: dict[str, Any], at: datetime
) -> None:
    properties = {"conversation_id": conversation.id, "language": conversation.language, **properties}
    outbox.add_event(
        session, name, conversation.customer_id, f"{OWN_EVENTS}chat-{conversation.id}-{suffix}", properties, at
    )


@dataclass(frozen=True, slots=True)
class Opening:
    token: str
    source: str
    customer_id: str
    identified: bool
    language: str
    page: str | None


def start(session: Session, opening: Opening, greeting: str, now: datetime) -> Conversation:
    """Open a conversation with the assistant's greeting as its first message."""
    conversation = Conversation(
        id=str(uuid.uuid4()),
        token_hash=token_hash(opening.token),
        source=opening.source,
        customer_id=opening.customer_id,
        identified=opening.identified,
        language=opening.language,
        page=opening.page,
        status="assistant",
        questions=0,
        answered=0,
        started_at=now,
        last_message_at=now,
    )
    session.add(conversation)
    session.flush()
    add_message(session, conversation, "assistant", greeting, now, kind="greeting", language=opening.language)
    _event(
        session,
        conversation,
        CatalogEvent.CONVERSATION_STARTED,
        "started",
        {"identified": opening.identified, "page": opening.page},
        now,
    )
    return conversation


def get(session: Session, conversation_id: str, token: str | None = None) -> Conversation | None:
    """The conversation; with ``token``, only if the token is the visitor's."""
    found = session.get(Conversation, conversation_id)
    if found is None or (token is not None and found.token_hash != token_hash(token)):
        return None
    return found


def of_case(session: Session, case_id: str) -> Conversation | None:
    return session.scalars(select(Conversation).where(Conversation.case_id == case_id)).first()


def add_message(
    session: Session, conversation: Conversation, author: str, text: str, now: datetime, **fields: Any
) -> ConversationMessage:
    message = ConversationMessage(conversation_id=conversation.id, author=author, text=text, created_at=now, **fields)
    session.add(message)
    conversation.last_message_at = now
    session.flush()
    return message


def record_question(
    session: Session,
    conversation: Conversation,
    question: ConversationMessage,
    answered: bool,
    kind: str,
    event: tuple[str, dict[str, Any]],
    now: datetime,
) -> None:
    """Mark the visitor's question (un)answered, count it, and report it (``kind``: the kind of
    the reply, so a question not answered for want of an article is told from one that needed
    an identified visitor)."""
    question.answered, question.kind = answered, kind
    conversation.questions += 1
    conversation.answered += int(answered)
    name, properties = event
    _event(session, conversation, name, f"q{question.id}", properties, now)


def messages(session: Session, conversation_id: str, after: int = 0, limit: int = 200) -> list[ConversationMessage]:
    query = select(ConversationMessage).where(
        ConversationMessage.conversation_id == conversation_id, ConversationMessage.id > after
    )
    return list(session.scalars(query.order_by(ConversationMessage.id).limit(limit)))


def transcript(session: Session, conversation: Conversation) -> str:
    """The conversation as plain text, for the first note of its case."""
    lines = [
        f"[{m.created_at:%H:%M}] {m.agent or m.author}: {m.text}"
        + (f" (article {m.article_id})" if m.article_id else "")
        for m in messages(session, conversation.id)
    ]
    return "\n".join(lines)[-10_000:]


@dataclass(frozen=True, slots=True)
class HandOff:
    subject: str
    priority: str
    sla_hours: float
    reason: str
    during_hours: bool


def hand_off(session: Session, conversation: Conversation, hand: HandOff, now: datetime) -> str:
    """Open the conversation's case (once: a second hand-off returns the same case) with the
    transcript as its first note, and stop the assistant answering."""
    if conversation.case_id is not None:
        return conversation.case_id
    opening = CaseOpening(
        customer_id=conversation.customer_id,
        subject=hand.subject[:300],
        priority=hand.priority,
        sla=timedelta(hours=hand.sla_hours),
        dedup_key=f"conversation:{conversation.id}",
        note=("transcript (website chat)", transcript(session, conversation)),
    )
    case_id = cases.open_case(session, opening, now)
    if case_id is None:  # opened by a concurrent request
        existing = cases.by_dedup_key(session, f"conversation:{conversation.id}")
        assert existing is not None
        case_id = existing
    conversation.case_id, conversation.status, conversation.handed_off_at = case_id, "waiting", now
    _event(
        session,
        conversation,
        CatalogEvent.CONVERSATION_HANDED_OFF,
        "handed-off",
        {"case_id": case_id, "reason": hand.reason, "during_hours": hand.during_hours},
        now,
    )
    return case_id


def agent_reply(
    session: Session, conversation: Conversation, agent: str, text: str, now: datetime
) -> ConversationMessage:
    """An agent's answer: shown in the widget; from now on the assistant is silent."""
    message = add_message(session, conversation, "agent", text, now, agent=agent)
    if conversation.status in ("assistant", "waiting"):
        conversation.status = "person"
    audit.record(session, agent, "reply", "conversation", conversation.id, {"message_id": message.id})
    return message


def close_for_case(session: Session, case_id: str) -> None:
    """The case was resolved: its conversation is closed (the widget then asks for a rating)."""
    session.execute(update(Conversation).where(Conversation.case_id == case_id).values(status="closed"))


def leave_contact(session: Session, conversation: Conversation, email: str, now: datetime) -> None:
    conversation.contact_email = email
    if conversation.case_id is not None:
        cases.add_note(session, conversation.case_id, "website chat", f"The visitor left their address: {email}", now)


def rate(session: Session, conversation: Conversation, rating: int, now: datetime) -> bool:
    """Rate once; whether this was the first rating."""
    if conversation.rating is not None:
        return False
    conversation.rating = rating
    handled_by = "person" if conversation.status in ("person", "closed") and conversation.case_id else "assistant"
    _event(
        session,
        conversation,
        CatalogEvent.CONVERSATION_RATED,
        "rated",
        {"rating": rating, "handled_by": handled_by},
        now,
    )
    return True


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    status: str | None = None
    since: datetime | None = None
    customer_id: str | None = None
    case_id: str | None = None
    limit: int = 100
    offset: int = 0


def listed(session: Session, wanted: ConversationFilter) -> list[Conversation]:
    """Conversations, the latest message first."""
    query = select(Conversation)
    if wanted.status:
        query = query.where(Conversation.status == wanted.status)
    if wanted.since is not None:
        query = query.where(Conversation.started_at >= wanted.since)
    if wanted.customer_id:
        query = query.where(Conversation.customer_id == wanted.customer_id)
    if wanted.case_id:
        query = query.where(Conversation.case_id == wanted.case_id)
    query = query.order_by(Conversation.last_message_at.desc(), Conversation.id).offset(wanted.offset)
    return list(session.scalars(query.limit(wanted.limit)))


def figures(session: Session, since: datetime) -> dict[str, Any]:
    """How the assistant did since ``since``: conversations, questions, answer rate, hand-off
    rate, conversations resolved without a person, average rating."""
    c = Conversation
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(c.questions), 0),
            func.coalesce(func.sum(c.answered), 0),
            func.count(c.case_id),
            func.count().filter(c.case_id.is_(None), c.answered > 0),
            func.count(c.rating),
            func.avg(c.rating),
        ).where(c.started_at >= since)
    ).one()
    total, questions, answered, handed, without_person, rated, rating = row
    asked = session.scalar(select(func.count()).where(c.started_at >= since, c.questions > 0)) or 0
    return {
        "conversations": int(total),
        "conversations_with_questions": int(asked),
        "questions": int(questions),
        "answered": int(answered),
        "answer_rate": round(answered / questions, 4) if questions else None,
        "handed_off": int(handed),
        "hand_off_rate": round(handed / asked, 4) if asked else None,
        "resolved_without_person": int(without_person),
        "resolution_without_person_rate": round(without_person / asked, 4) if asked else None,
        "rated": int(rated),
        "average_rating": round(float(rating), 2) if rating is not None else None,
    }


def unanswered_questions(session: Session, since: datetime, limit: int = 2000) -> list[ConversationMessage]:
    """The visitors' questions no article answered well enough, the newest first."""
    query = select(ConversationMessage).where(
        ConversationMessage.author == "visitor",
        ConversationMessage.answered.is_(False),
        ConversationMessage.kind == "not_sure",
        ConversationMessage.created_at >= since,
    )
    return list(session.scalars(query.order_by(ConversationMessage.created_at.desc()).limit(limit)))
