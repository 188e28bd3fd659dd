"""The website chat: the widget's script (``/v1/chat.js``) and the API it calls, for visitors.

Authentication is the collector's model: a browser source's write key (``Authorization:
Bearer`` or ``writeKey`` in the body) and its allowed origins, checked on every call; a started
conversation is then read and written with its own random token (``X-Conversation-Token``),
so its id alone reads nothing. A visitor is identified only by the shop's identity token
(:mod:`ecrm_interaction.assistant.identity`); an unverified user id is ignored, so nobody
reads another customer's orders. Messages are plain text (the widget never renders HTML),
1 to 1000 characters; floods answer 429 with ``Retry-After``.
"""

# No ``from __future__ import annotations``: the conversation dependency is built in
# ``router()``, and FastAPI reads a handler's annotations where they are written.
import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, field_validator

from ecrm_interaction.api.deps import SessionDep, SettingsDep
from ecrm_interaction.api.services.assistant import Assistant
from ecrm_interaction.assistant.hours import BusinessHours
from ecrm_interaction.assistant.identity import identity_token, verified
from ecrm_interaction.assistant.language import page_language
from ecrm_interaction.assistant.phrases import say, when_back
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import conversations
from ecrm_interaction.storage.conversations import HandOff, Opening
from ecrm_interaction.storage.models import Conversation, ConversationMessage
from ecrm_schemas.rate_limit import TokenBuckets
from ecrm_schemas.sources import Source, SourceDirectory

SCRIPT_MEDIA_TYPE = "application/javascript; charset=utf-8"
MAX_TEXT = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


DEMO_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>The shop (assistant demo)</title>
<script src="{tracker}/v1/ecrm.js" data-write-key="{key}" async></script>
<script src="/v1/chat.js" data-write-key="{key}"{identity} async></script></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The shop</h1><p>A demonstration page of the development stack, browsing as {who}. The chat is at the bottom right:
ask about returns, delivery or sizes, or (signed in) where your order is.</p>
<p>Change the language with <code>&lt;html lang&gt;</code>: the widget follows the page.</p></body></html>"""


@cache
def widget_script() -> tuple[bytes, str]:
    body = files("ecrm_interaction.api").joinpath("static/chat.js").read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _refused(
    status: int, code: str, field: str, rule: str, message: str, headers: dict[str, str] | None = None
) -> HTTPException:
    detail = {"code": code, "message": message, "errors": [{"field": field, "rule": rule, "message": message}]}
    return HTTPException(status, detail, headers=headers)


class Limiter:
    """A rate limit of the chat (:class:`ecrm_schemas.rate_limit.TokenBuckets`) that refuses with 429."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self._buckets = TokenBuckets(per_minute / 60, burst)

    def admit(self, key: str, what: str) -> None:
        wait = self._buckets.admit(key)
        if wait is not None:
            raise _refused(429, "rate_limited", "$", "rate_limit", f"too many {what}; try again in {wait} s",
                           {"Retry-After": str(wait)})  # fmt: skip


class StartIn(BaseModel):
    writeKey: str | None = Field(default=None, max_length=200)
    anonymous_id: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    user_id: str | None = Field(default=None, max_length=256)
    user_token: str | None = Field(default=None, max_length=128, description="The shop's identity token for user_id.")
    language: str | None = Field(default=None, max_length=35)
    page: str | None = Field(default=None, max_length=2000)


def _clean(text: str) -> str:
    cleaned = _CONTROL.sub("", text).strip()
    if not cleaned:
        raise ValueError("a message has some text")
    return cleaned


class MessageIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT, description=f"Plain text, at most {MAX_TEXT} characters.")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _clean(value)


class ContactIn(BaseModel):
    email: str = Field(max_length=320, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


class RatingIn(BaseModel):
    rating: int = Field(ge=1, le=5)


class ArticleOut(BaseModel):
    id: str
    language: str
    title: str
    body: str


class MessageOut(BaseModel):
    id: int
    author: Literal["visitor", "assistant", "agent"]
    text: str
    agent: str | None = None
    article: ArticleOut | None = None
    offer_person: bool = False
    created_at: datetime


class ConversationOut(BaseModel):
    conversation_id: str
    status: str
    """``assistant``, ``waiting`` (handed off), ``person`` (an agent answers), ``closed``."""
    identified: bool
    language: str
    rating: int | None
    support_open: bool
    support_back_at: datetime | None
    messages: list[MessageOut]


class StartedOut(ConversationOut):
    token: str = Field(description="Present it as X-Conversation-Token on every later call; shown once.")


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@dataclass(frozen=True, slots=True)
class _Gate:
    """What the chat routes check with: the write keys, the rate limits, the business hours."""

    sources: SourceDirectory
    per_conversation: Limiter
    per_source: Limiter
    starts: Limiter
    hours: BusinessHours

    @classmethod
    def of(cls, settings: InteractionSettings) -> "_Gate":
        rate = settings.interaction_chat_messages_per_minute
        return cls(
            SourceDirectory(settings.collector_sources_file, frozenset()),
            Limiter(rate, burst=5),
            Limiter(rate * 10, burst=50),
            Limiter(rate * 2, burst=10),  # conversations started, per website and address
            settings.support_hours(),
        )


def router(assistant: Assistant) -> APIRouter:
    routes = APIRouter(tags=["chat"])

    @cache
    def gate() -> _Gate:
        return _Gate.of(assistant.settings)

    def source_of(request: Request, key: str | None) -> Source:
        if not key:
            raise _refused(401, "unauthorized", "writeKey", "missing", "send the browser source's write key")
        source = gate().sources.find(key)
        if source is None:
            raise _refused(401, "unauthorized", "writeKey", "unknown_key", "unknown or revoked write key")
        if source.kind != "browser":  # a server key is a secret: it has no place in a page
            raise _refused(403, "browser_key_required", "writeKey", "browser_source",
                           "the chat takes a browser source's key (wkb_…), never a server key")  # fmt: skip
        _check_origin(request, source)
        return source

    def _check_origin(request: Request, source: Source) -> None:
        origin = request.headers.get("origin")
        if not source.allows_origin(origin):
            raise _refused(
                403,
                "origin_not_allowed",
                "Origin",
                "allowed_origins",
                f"this source does not accept chats from the origin {origin}",
            )

    def conversation_of(
        request: Request,
        session: SessionDep,
        conversation_id: str,
        token: Annotated[str | None, Header(alias="X-Conversation-Token")] = None,
    ) -> Conversation:
        if not token:
            raise _refused(401, "unauthorized", "X-Conversation-Token", "missing", "send the conversation's token")
        found = conversations.get(session, conversation_id, token)
        if found is None:
            raise _refused(404, "not_found", "conversation_id", "unknown", "no conversation with this id and token")
        source = gate().sources.named(found.source)
        if source is None:
            raise _refused(401, "unauthorized", "writeKey", "unknown_key", "the website's write key was revoked")
        _check_origin(request, source)
        return found

    Owned = Annotated[Conversation, Depends(conversation_of)]

    def view(session: SessionDep, conversation: Conversation, after: int = 0) -> dict[str, Any]:
        now = datetime.now(UTC)
        hours = gate().hours
        is_open = hours.open_at(now)
        shown = [_message(assistant, m, conversation) for m in conversations.messages(session, conversation.id, after)]
        return {
            "conversation_id": conversation.id,
            "status": conversation.status,
            "identified": conversation.identified,
            "language": conversation.language,
            "rating": conversation.rating,
            "support_open": is_open,
            "support_back_at": None if is_open else hours.next_opening(now),
            "messages": shown,
        }

    @routes.get("/v1/chat.js", response_class=Response, responses={200: {"content": {SCRIPT_MEDIA_TYPE: {}}}})
    async def script(request: Request) -> Response:
        """The chat widget: one script tag with the browser source's write key (see the README)."""
        body, etag = widget_script()
        headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=SCRIPT_MEDIA_TYPE, headers=headers)

    @routes.get("/chat-demo", response_class=HTMLResponse)
    def demo(key: str = "", user: str = "") -> HTMLResponse:
        """A demonstration shop page with the widget (``ECRM_ENV=development`` only: with
        ``user`` it computes that user's identity token, which only a shop's back end may do)."""
        settings = assistant.settings
        if settings.is_production or settings.ecrm_env != "development":
            raise HTTPException(404, "not_found")
        secret = settings.interaction_assistant_identity_secret
        identity = ""
        if user and secret is not None:
            token = identity_token(secret.get_secret_value(), user)
            identity = f' data-user-id="{html.escape(user)}" data-user-token="{token}"'
        page = DEMO_PAGE.format(
            key=html.escape(key),
            identity=identity,
            tracker=html.escape(settings.interaction_tracking_url),
            who=html.escape(user) or "an anonymous visitor",
        )
        return HTMLResponse(page)

    @routes.post("/v1/chat/conversations", status_code=201)
    def start(start: StartIn, request: Request, session: SessionDep, settings: SettingsDep) -> StartedOut:
        """Start a conversation. ``user_id`` counts only with its ``user_token`` (the shop's
        identity token); else the visitor is their ``anonymous_id`` (ecrm.js's, if on the page)."""
        source = source_of(request, _bearer(request) or start.writeKey)
        gate().starts.admit(f"{source.name}:{request.client.host if request.client else '-'}", "conversations started")
        secret = settings.interaction_assistant_identity_secret
        identified = verified(secret.get_secret_value() if secret else None, start.user_id, start.user_token)
        if start.user_id and start.user_token and not identified:
            raise _refused(
                403, "identity_not_verified", "user_token", "hmac", "the identity token does not match this user id"
            )
        customer_id = (
            start.user_id if identified and start.user_id else (start.anonymous_id or f"chat-{secrets.token_hex(8)}")
        )
        spoken = page_language(start.language)
        chosen = spoken if spoken in assistant.languages else assistant.default_language
        token = secrets.token_urlsafe(24)
        page = start.page.split("?")[0][:2000] if start.page else None
        opening = Opening(token, source.name, customer_id, identified, chosen, page)
        conversation = conversations.start(session, opening, say(chosen, "greeting"), datetime.now(UTC))
        return StartedOut(token=token, **view(session, conversation))

    @routes.get("/v1/chat/conversations/{conversation_id}")
    def read(conversation: Owned, session: SessionDep, after: int = 0) -> ConversationOut:
        """The conversation's messages after ``after`` (the last id the widget has): it polls this."""
        return ConversationOut(**view(session, conversation, after))

    @routes.post("/v1/chat/conversations/{conversation_id}/messages")
    def ask(message: MessageIn, conversation: Owned, session: SessionDep, after: int = 0) -> ConversationOut:
        """Ask: the answer (an article, the customer's own data, or "not sure" with a person
        offered) comes back with the question; once handed off, only the question is recorded."""
        if conversation.status == "closed":
            raise _refused(
                409, "conversation_closed", "conversation_id", "closed", "this conversation is closed; start a new one"
            )
        gate().per_conversation.admit(conversation.id, "messages in this conversation")
        gate().per_source.admit(conversation.source, "messages from this website")
        now = datetime.now(UTC)
        answered = assistant.answer(session, conversation, message.text, now)
        if answered.reply is not None and answered.reply.kind == "person":
            _hand_off(session, conversation, "requested", answered.language, now)
        return ConversationOut(**view(session, conversation, after))

    def _hand_off(session: SessionDep, conversation: Conversation, reason: str, speaking: str, now: datetime) -> None:
        first = next((m.text for m in conversations.messages(session, conversation.id) if m.author == "visitor"), None)
        subject = f"Website chat: {first}" if first else "Website chat"
        settings, hours = assistant.settings, gate().hours
        during = hours.open_at(now)
        hand = HandOff(
            subject[:300], settings.interaction_handoff_priority, settings.interaction_handoff_sla_hours, reason, during
        )
        conversations.hand_off(session, conversation, hand, now)
        back = hours.next_opening(now)
        text = (
            say(speaking, "handed_off")
            if during or back is None
            else say(speaking, "handed_off_closed", back=when_back(back, speaking))
        )
        conversations.add_message(session, conversation, "assistant", text, now, kind="handed_off", language=speaking)

    @routes.post("/v1/chat/conversations/{conversation_id}/handoff")
    def hand_off(conversation: Owned, session: SessionDep, after: int = 0) -> ConversationOut:
        """Hand the conversation to people: it becomes a case with the transcript (once); the
        reason is ``unanswered`` when the assistant's last answer was that it was not sure."""
        if conversation.status == "assistant":
            said = [m for m in conversations.messages(session, conversation.id) if m.author == "assistant"]
            last = said[-1] if said else None
            reason = "unanswered" if last is not None and last.kind in ("not_sure", "need_identity") else "requested"
            speaking = (last.language if last is not None else None) or conversation.language
            _hand_off(session, conversation, reason, speaking, datetime.now(UTC))
        return ConversationOut(**view(session, conversation, after))

    @routes.post("/v1/chat/conversations/{conversation_id}/contact")
    def leave_contact(contact: ContactIn, conversation: Owned, session: SessionDep, after: int = 0) -> ConversationOut:
        """Leave an email address (outside business hours) for people to answer at."""
        now = datetime.now(UTC)
        conversations.leave_contact(session, conversation, str(contact.email), now)
        conversations.add_message(
            session,
            conversation,
            "assistant",
            say(conversation.language, "contact_saved", email=contact.email),
            now,
            kind="notice",
        )
        return ConversationOut(**view(session, conversation, after))

    @routes.post("/v1/chat/conversations/{conversation_id}/rating")
    def rate(rating: RatingIn, conversation: Owned, session: SessionDep, after: int = 0) -> ConversationOut:
        """Rate the conversation, 1 to 5, once (reported as ``Conversation Rated``)."""
        now = datetime.now(UTC)
        if conversations.rate(session, conversation, rating.rating, now):
            conversations.add_message(
                session, conversation, "assistant", say(conversation.language, "rated"), now, kind="notice"
            )
        return ConversationOut(**view(session, conversation, after))

    return routes


def _message(assistant: Assistant, message: ConversationMessage, conversation: Conversation) -> dict[str, Any]:
    shown_in = message.language or conversation.language
    article = assistant.article(message.article_id, shown_in) if message.article_id else None
    offer = message.kind == "not_sure" and conversation.status == "assistant"
    return {
        "id": message.id,
        "author": message.author,
        "text": message.text,
        "agent": message.agent,
        "article": ArticleOut(id=article.id, language=article.language, title=article.title, body=article.body)
        if article
        else None,
        "offer_person": offer,
        "created_at": message.created_at,
    }
