"""Typed domain events: the track events the eCRM understands, by source.

A track event whose ``event`` name is in :data:`CATALOG` must carry properties of the
listed model; other names are custom events with free properties. Property names follow
the Segment e-commerce and email specs (snake_case). Extra properties are kept.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, NonNegativeInt

from ecrm_schemas.actions import ActionKind


class Source(StrEnum):
    """Where a domain event comes from in the eCRM lifecycle."""

    WEB = "web"
    EMAIL = "email"
    SURVEY = "survey"
    BACKEND = "backend"
    INTERACTION = "interaction"
    """The eCRM's own interaction service reporting what it did."""


class CatalogEvent(StrEnum):
    """The catalogued track event names: the one list of them (:data:`CATALOG` is keyed by it).

    Service code names a catalogued event by its member, never by a string literal
    (``tests/test_drift.py`` checks).
    """

    PRODUCT_VIEWED = "Product Viewed"
    ELEMENT_CLICKED = "Element Clicked"
    PRODUCT_ADDED = "Product Added"
    ORDER_COMPLETED = "Order Completed"
    EMAIL_SENT = "Email Sent"
    EMAIL_DELIVERED = "Email Delivered"
    EMAIL_OPENED = "Email Opened"
    EMAIL_LINK_CLICKED = "Email Link Clicked"
    EMAIL_BOUNCED = "Email Bounced"
    EMAIL_MARKED_AS_SPAM = "Email Marked as Spam"
    UNSUBSCRIBED = "Unsubscribed"
    SURVEY_ANSWERED = "Survey Answered"
    NPS_ANSWERED = "NPS Answered"
    ORDER_REFUNDED = "Order Refunded"
    INVOICE_PAID = "Invoice Paid"
    INVENTORY_UPDATED = "Inventory Updated"
    SHIPMENT_UPDATED = "Shipment Updated"
    CONSENT_UPDATED = "Consent Updated"
    MESSAGE_SUPPRESSED = "Message Suppressed"
    MESSAGE_DEFERRED = "Message Deferred"
    MESSAGE_FAILED = "Message Failed"
    ACTION_COMPLETED = "Action Completed"
    CASE_OPENED = "Case Opened"
    CASE_ESCALATED = "Case Escalated"
    CASE_UPDATED = "Case Updated"
    CASE_RESOLVED = "Case Resolved"
    LOYALTY_POINTS_AWARDED = "Loyalty Points Awarded"
    REWARD_ISSUED = "Reward Issued"
    CONVERSATION_STARTED = "Conversation Started"
    QUESTION_ANSWERED = "Question Answered"
    QUESTION_UNANSWERED = "Question Unanswered"
    CONVERSATION_HANDED_OFF = "Conversation Handed Off"
    CONVERSATION_RATED = "Conversation Rated"


Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class _Properties(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- web behaviour (passive collection) -------------------------------------------------


class ProductViewed(_Properties):
    product_id: str = Field(min_length=1)
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    price: Money | None = None
    currency: Currency | None = None
    url: str | None = None


class ElementClicked(_Properties):
    element_id: str | None = None
    element_text: str | None = None
    href: str | None = None
    page_url: str | None = None


class ProductAdded(_Properties):
    product_id: str = Field(min_length=1)
    cart_id: str | None = None
    quantity: int = Field(default=1, ge=1)
    price: Money | None = None
    currency: Currency | None = None


class OrderProduct(_Properties):
    product_id: str = Field(min_length=1)
    quantity: int = Field(default=1, ge=1)
    price: Money | None = None


class OrderCompleted(_Properties):
    order_id: str = Field(min_length=1)
    total: Money
    revenue: Money | None = None
    currency: Currency = "EUR"
    products: list[OrderProduct] = Field(default_factory=list)


# --- email (the channel's own events) ---------------------------------------------------


class _EmailProperties(_Properties):
    email_id: str = Field(min_length=1, description="The id of the sent message.")
    campaign_id: str | None = None
    rule_id: str | None = None
    template: str | None = None


class EmailSent(_EmailProperties):
    subject: str | None = None


class EmailDelivered(_EmailProperties):
    pass


class EmailOpened(_EmailProperties):
    machine_open: bool = Field(
        default=False,
        description="Fetched with no person opening: Apple Mail Privacy Protection's prefetch, a link scanner; "
        "opens through image proxies that fetch when a person opens (Gmail, Yahoo, Outlook) are human.",
    )


class EmailLinkClicked(_EmailProperties):
    link_url: HttpUrl


class EmailBounced(_EmailProperties):
    bounce_type: Literal["hard", "soft"]
    reason: str | None = None


class EmailMarkedAsSpam(_EmailProperties):
    pass


class Unsubscribed(_EmailProperties):
    email_id: str | None = None  # type: ignore[assignment]
    list_id: str | None = None


# --- surveys (active collection) --------------------------------------------------------


class SurveyAnswered(_Properties):
    survey_id: str = Field(min_length=1)
    question_id: str = Field(min_length=1)
    answer: str | int | float | bool | list[str] | None = None
    text: str | None = Field(default=None, max_length=4000)


class NpsAnswered(_Properties):
    survey_id: str = Field(min_length=1)
    question_id: str = "nps"
    score: Annotated[int, Field(ge=0, le=10)]
    comment: str | None = Field(default=None, max_length=4000)


# --- back-end systems (orders, billing, inventory, logistics) ---------------------------


class OrderRefunded(_Properties):
    order_id: str = Field(min_length=1)
    total: Money
    currency: Currency = "EUR"
    reason: str | None = None


class InvoicePaid(_Properties):
    invoice_id: str = Field(min_length=1)
    amount: Money
    currency: Currency = "EUR"


class InventoryUpdated(_Properties):
    product_id: str = Field(min_length=1)
    quantity: NonNegativeInt
    warehouse: str | None = None


class ShipmentUpdated(_Properties):
    order_id: str = Field(min_length=1)
    status: Literal["created", "shipped", "in_transit", "delivered", "returned", "lost"]
    carrier: str | None = None
    tracking_id: str | None = None


# --- consent (any source) ------------------------------------------------------------


class ConsentUpdated(_Properties):
    channel: Literal["email", "sms", "push", "webhook"]
    granted: bool
    purpose: str = Field(default="marketing", min_length=1, max_length=100)
    source: str | None = None


# --- what the interaction service did (it reports every decision) ---------------------


class _Decision(_Properties):
    decision_id: str = Field(min_length=1)
    rule_id: str | None = None
    action: ActionKind
    channel: str | None = None


class MessageSuppressed(_Decision):
    reason: str = Field(min_length=1, description="The contact-policy rule that refused it.")


class MessageDeferred(_Decision):
    until: datetime
    reason: str = Field(min_length=1)


class MessageFailed(_Decision):
    reason: str = Field(min_length=1)


class ActionCompleted(_Decision):
    detail: dict[str, Any] = Field(default_factory=dict)


class CaseEvent(_Properties):
    case_id: str = Field(min_length=1)
    subject: str | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    status: Literal["open", "pending", "resolved"] | None = None
    assignee: str | None = None
    rule_id: str | None = None


class LoyaltyPointsAwarded(_Properties):
    """The interaction service's loyalty ledger changed: it owns the balance and the tier; the
    aggregator folds the latest event's into ``computed.loyalty_points`` / ``computed.loyalty_tier``."""

    points: int
    """What this ledger entry added (negative: taken)."""
    balance: int = Field(ge=0)
    """The customer's balance when the event was published (it never goes below 0)."""
    tier: str
    reason: str = Field(min_length=1)
    rule_id: str | None = None


class RewardIssued(_Properties):
    reward_id: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    rule_id: str | None = None


# --- the customer assistant (the website's chat; the interaction service reports each step) --


class _ConversationStep(_Properties):
    conversation_id: str = Field(min_length=1)
    language: str = Field(min_length=2, max_length=10)


class ConversationStarted(_ConversationStep):
    identified: bool = Field(description="The shop's back end vouched for the visitor (an identity token).")
    page: str | None = Field(default=None, max_length=2000, description="The path of the page it started on.")


class QuestionAnswered(_ConversationStep):
    """The assistant answered: from an article (``article_id``) or from the customer's data (``intent``)."""

    article_id: str | None = None
    intent: Literal["order_status", "refund_status", "loyalty_balance", "unsubscribe"] | None = None
    confidence: float = Field(
        ge=-1, le=1, description="The match's cosine similarity (lexical: its share of the best)."
    )


class QuestionUnanswered(_ConversationStep):
    """The assistant was not sure enough (or the data needed an identified visitor) and offered a person."""

    confidence: float = Field(ge=-1, le=1)
    closest_article_id: str | None = None
    reason: Literal["not_sure", "not_identified", "no_data"] = "not_sure"


class ConversationHandedOff(_ConversationStep):
    case_id: str = Field(min_length=1)
    reason: Literal["requested", "unanswered"]
    during_hours: bool = Field(
        description="People were at work: outside hours the visitor was told when they are back."
    )


class ConversationRated(_ConversationStep):
    rating: int = Field(ge=1, le=5)
    handled_by: Literal["assistant", "person"]


class DomainEvent(BaseModel):
    """One catalogued track event: its name, source and properties model."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    source: Source
    properties: Any
    description: str
    server_only: bool = False
    """Only server write keys may send it: a browser key is public, so it must not be able to
    claim orders, refunds, billing or inventory changes, nor the email channel's own events
    (they come from the tracking links and the providers' webhooks; a click earns loyalty points)."""
    contact_state: bool = False
    """It changes whether the customer may be contacted (unsubscribe, bounce, complaint, consent).
    Only trusted senders may report it: server write keys, the signed links (the interaction
    service's ``/u/`` unsubscribe, the collector's tracking tokens) and the providers' verified
    webhooks. A browser key may not: anyone reading a shop's page could block any customer's mail."""


def _entry(
    name: CatalogEvent,
    source: Source,
    model: type[_Properties],
    description: str,
    *,
    server_only: bool = False,
    contact_state: bool = False,
) -> tuple[str, DomainEvent]:
    entry = DomainEvent(
        name=name,
        source=source,
        properties=model,
        description=description,
        server_only=server_only,
        contact_state=contact_state,
    )
    return name, entry


CATALOG: dict[str, DomainEvent] = dict(
    [
        _entry(CatalogEvent.PRODUCT_VIEWED, Source.WEB, ProductViewed, "A product page was viewed."),
        _entry(CatalogEvent.ELEMENT_CLICKED, Source.WEB, ElementClicked, "A tracked element was clicked."),
        _entry(CatalogEvent.PRODUCT_ADDED, Source.WEB, ProductAdded, "A product was added to the cart."),
        _entry(CatalogEvent.ORDER_COMPLETED, Source.WEB, OrderCompleted, "An order was placed.", server_only=True),
        _entry(
            CatalogEvent.EMAIL_SENT,
            Source.EMAIL,
            EmailSent,
            "An email was handed to the mail server.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.EMAIL_DELIVERED,
            Source.EMAIL,
            EmailDelivered,
            "The recipient's server accepted it.",
            server_only=True,
        ),
        _entry(CatalogEvent.EMAIL_OPENED, Source.EMAIL, EmailOpened, "The email was opened.", server_only=True),
        _entry(
            CatalogEvent.EMAIL_LINK_CLICKED,
            Source.EMAIL,
            EmailLinkClicked,
            "A link in the email was clicked.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.EMAIL_BOUNCED,
            Source.EMAIL,
            EmailBounced,
            "The email bounced (hard or soft).",
            contact_state=True,
        ),
        _entry(
            CatalogEvent.EMAIL_MARKED_AS_SPAM,
            Source.EMAIL,
            EmailMarkedAsSpam,
            "The recipient complained.",
            contact_state=True,
        ),
        _entry(
            CatalogEvent.UNSUBSCRIBED, Source.EMAIL, Unsubscribed, "The recipient unsubscribed.", contact_state=True
        ),
        _entry(CatalogEvent.SURVEY_ANSWERED, Source.SURVEY, SurveyAnswered, "A survey question was answered."),
        _entry(CatalogEvent.NPS_ANSWERED, Source.SURVEY, NpsAnswered, "A Net Promoter Score answer, 0 to 10."),
        _entry(CatalogEvent.ORDER_REFUNDED, Source.BACKEND, OrderRefunded, "An order was refunded.", server_only=True),
        _entry(CatalogEvent.INVOICE_PAID, Source.BACKEND, InvoicePaid, "A bill was paid.", server_only=True),
        _entry(
            CatalogEvent.INVENTORY_UPDATED,
            Source.BACKEND,
            InventoryUpdated,
            "Stock of a product changed.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.SHIPMENT_UPDATED,
            Source.BACKEND,
            ShipmentUpdated,
            "A delivery changed status.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.CONSENT_UPDATED,
            Source.BACKEND,
            ConsentUpdated,
            "The customer gave or withdrew consent for a channel (relayed by the shop's back end).",
            contact_state=True,
        ),
        _entry(
            CatalogEvent.MESSAGE_SUPPRESSED,
            Source.INTERACTION,
            MessageSuppressed,
            "The contact policy refused a message.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.MESSAGE_DEFERRED,
            Source.INTERACTION,
            MessageDeferred,
            "A message waits for the customer's quiet hours to end.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.MESSAGE_FAILED,
            Source.INTERACTION,
            MessageFailed,
            "A message could not be delivered.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.ACTION_COMPLETED,
            Source.INTERACTION,
            ActionCompleted,
            "A rule's webhook, notification or other action was carried out.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.CASE_OPENED,
            Source.INTERACTION,
            CaseEvent,
            "A customer-service case was opened.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.CASE_ESCALATED,
            Source.INTERACTION,
            CaseEvent,
            "A case passed its SLA unresolved.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.CASE_UPDATED,
            Source.INTERACTION,
            CaseEvent,
            "A case changed status, priority or assignee.",
            server_only=True,
        ),
        _entry(CatalogEvent.CASE_RESOLVED, Source.INTERACTION, CaseEvent, "A case was resolved.", server_only=True),
        _entry(
            CatalogEvent.LOYALTY_POINTS_AWARDED,
            Source.INTERACTION,
            LoyaltyPointsAwarded,
            "Points were added to (or taken from) the customer's balance.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.REWARD_ISSUED,
            Source.INTERACTION,
            RewardIssued,
            "A loyalty reward was issued.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.CONVERSATION_STARTED,
            Source.INTERACTION,
            ConversationStarted,
            "A visitor started a conversation with the website's assistant.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.QUESTION_ANSWERED,
            Source.INTERACTION,
            QuestionAnswered,
            "The assistant answered a question with an article or from the customer's data.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.QUESTION_UNANSWERED,
            Source.INTERACTION,
            QuestionUnanswered,
            "The assistant was not sure of an answer and offered a person.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.CONVERSATION_HANDED_OFF,
            Source.INTERACTION,
            ConversationHandedOff,
            "A conversation was handed to people as a case.",
            server_only=True,
        ),
        _entry(
            CatalogEvent.CONVERSATION_RATED,
            Source.INTERACTION,
            ConversationRated,
            "The visitor rated a conversation (1 to 5).",
            server_only=True,
        ),
    ]
)

if set(CATALOG) != set(CatalogEvent):  # one list: a member without an entry (or the reverse) is a mistake
    raise RuntimeError(f"CatalogEvent and CATALOG disagree: {set(CATALOG) ^ set(CatalogEvent)}")


CONTACT_STATE_EVENTS: frozenset[str] = frozenset(name for name, entry in CATALOG.items() if entry.contact_state)
"""The events that change whether a customer may be contacted; see :attr:`DomainEvent.contact_state`."""
SERVER_ONLY_EVENTS: frozenset[str] = frozenset(name for name, entry in CATALOG.items() if entry.server_only)
"""The back-end and interaction events only server write keys may send."""


def browser_refusal(event_name: str) -> tuple[str, str] | None:
    """The rule and message refusing ``event_name`` from a browser (public) write key, or None.

    Rules: ``contact_state`` (:data:`CONTACT_STATE_EVENTS`) and ``server_only``
    (:data:`SERVER_ONLY_EVENTS`). Names are compared as validation stores them (stripped).
    """
    name = event_name.strip()
    if name in CONTACT_STATE_EVENTS:
        return (
            "contact_state",
            f"{name!r} changes whether the customer may be contacted, so a public browser key may not send it: "
            "send it from your back end with a server key (unsubscribes, bounces and complaints of our own mail "
            "arrive by the signed links and the providers' verified webhooks)",
        )
    if name in SERVER_ONLY_EVENTS:
        if CATALOG[name].source is Source.EMAIL:
            return "server_only", (
                f"{name!r} is reported by the email channel itself (the signed tracking links, the providers' "
                "webhooks) or sent with a server key; a public browser key could claim it for any customer"
            )
        return "server_only", f"{name!r} is a back-end event: only server write keys may send it"
    return None
