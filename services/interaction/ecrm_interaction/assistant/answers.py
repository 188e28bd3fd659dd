"""From a question's matches to the assistant's reply: an article, the customer's own data, or
"not sure" with a person offered. Pure: the shell reads the articles and the customer's data.

The rule: the best match must reach the confidence threshold; else the assistant says it is
not sure (it never answers from a weak match). An own-data intent is answered only to an
identified visitor (``CustomerData`` given), and only from that visitor's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ecrm_interaction.assistant.intents import NEEDS_IDENTITY, OUT_OF_SCOPE, order_numbers
from ecrm_interaction.assistant.knowledge import Article
from ecrm_interaction.assistant.matching import Match
from ecrm_interaction.assistant.phrases import say
from ecrm_schemas.catalog import CatalogEvent

ReplyKind = Literal["article", "data", "not_sure", "need_identity", "person"]
"""``person``: the visitor asked for a person; the shell hands the conversation off."""


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """One order as the customer's events tell it: placed, shipped, refunded."""

    order_id: str
    placed_at: datetime
    total: float
    currency: str
    shipment_status: str | None = None
    shipment_at: datetime | None = None
    carrier: str | None = None
    tracking_id: str | None = None
    refunded: float | None = None
    refunded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CustomerData:
    """What an identified visitor may ask about themself (read by the shell for their user id only)."""

    orders: Sequence[OrderFacts] = ()
    """Newest first."""
    points: int | None = None
    tier: str | None = None
    next_tier: Mapping[str, Any] | None = None
    """``{"tier", "points_missing"}`` when there is a tier above."""
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ReplyKind
    text: str
    confidence: float
    article: Article | None = None
    intent: str | None = None
    closest_article_id: str | None = None
    offer_person: bool = False
    links: tuple[str, ...] = field(default_factory=tuple)

    @property
    def answered(self) -> bool:
        return self.kind in ("article", "data")

    def event(self) -> tuple[str, dict[str, Any]]:
        """The catalog event this reply is reported as, with its properties (the language and
        conversation are the shell's to add)."""
        if self.answered:
            article_id = self.article.id if self.article is not None else None
            return CatalogEvent.QUESTION_ANSWERED, {
                "article_id": article_id,
                "intent": self.intent,
                "confidence": self.confidence,
            }
        reason = "not_identified" if self.kind == "need_identity" else "not_sure"
        return CatalogEvent.QUESTION_UNANSWERED, {
            "confidence": self.confidence,
            "closest_article_id": self.closest_article_id,
            "reason": reason,
        }


def best_match(matches: Sequence[Match], threshold: float) -> Match | None:
    """The match to answer with, or None when the best is below ``threshold`` or out of scope."""
    if not matches or matches[0].confidence < threshold:
        return None
    return None if matches[0].kind == "intent" and matches[0].key == OUT_OF_SCOPE else matches[0]


def closest_article(matches: Sequence[Match]) -> str | None:
    """The best article among the matches (what an unanswered question came closest to)."""
    return next((m.key for m in matches if m.kind == "article"), None)


def article_reply(article: Article, match: Match, language: str) -> Reply:
    return Reply("article", say(language, "article"), match.confidence, article=article)


def not_sure(matches: Sequence[Match], language: str) -> Reply:
    confidence = matches[0].confidence if matches else 0.0
    return Reply(
        "not_sure",
        say(language, "not_sure"),
        confidence,
        closest_article_id=closest_article(matches),
        offer_person=True,
    )


def data_reply(intent: str, match: Match, question: str, data: CustomerData | None, language: str) -> Reply:
    """The answer to an own-data question: ``data`` is None for a visitor nobody vouched for."""
    if intent == "talk_to_person":
        return Reply("person", say(language, "handed_off"), match.confidence, intent=intent)
    if data is None and intent in NEEDS_IDENTITY:
        return Reply("need_identity", say(language, "need_identity"), match.confidence, intent=intent)
    if intent == "unsubscribe":
        if data is not None and data.unsubscribe_url:
            text = say(language, "unsubscribe_link", link=data.unsubscribe_url)
            return Reply("data", text, match.confidence, intent=intent, links=(data.unsubscribe_url,))
        return Reply("data", say(language, "unsubscribe_general"), match.confidence, intent=intent)
    assert data is not None
    if intent == "loyalty_balance":
        return Reply("data", _loyalty(data, language), match.confidence, intent=intent)
    text, found = _order_answer(intent, question, data.orders, language)
    return Reply("data", text, match.confidence, intent=intent, offer_person=not found)


def _loyalty(data: CustomerData, language: str) -> str:
    text = say(language, "loyalty", points=data.points or 0, tier=data.tier or "-")
    if data.next_tier:
        text += " " + say(
            language, "loyalty_next", missing=data.next_tier["points_missing"], next=data.next_tier["tier"]
        )
    return text


def _order_answer(intent: str, question: str, orders: Sequence[OrderFacts], language: str) -> tuple[str, bool]:
    if not orders:
        return say(language, "no_orders"), False
    named = order_numbers(question)
    if named:
        wanted = {_digits(n) for n in named}
        chosen = [o for o in orders if _digits(o.order_id) in wanted]
        if not chosen:
            # Never says whether that order exists for someone else.
            return say(language, "unknown_order", order=named[0], latest=orders[0].order_id), False
        order = chosen[0]
    else:
        order = orders[0]
    if intent == "refund_status":
        if order.refunded is not None and order.refunded_at is not None:
            return say(
                language,
                "refund_done",
                order=order.order_id,
                amount=(order.refunded, order.currency),
                date=order.refunded_at,
            ), True
        return say(language, "refund_none", order=order.order_id), True
    status = say(language, f"status_{order.shipment_status or 'placed'}")
    if order.shipment_at is not None:
        status += " " + say(language, "status_since", date=order.shipment_at)
    text = say(
        language,
        "order",
        order=order.order_id,
        date=order.placed_at,
        total=(order.total, order.currency),
        status=status,
    )
    if order.tracking_id:
        text += " " + say(language, "order_tracking", carrier=order.carrier or "", tracking=order.tracking_id).strip()
    if not named and len(orders) > 1:
        text += " " + say(language, "more_orders", count=len(orders) - 1)
    return text, True


def _digits(order_id: str) -> str:
    """``ORD-10442``, ``#10442`` and ``10442`` name one order."""
    return "".join(c for c in order_id if c.isdigit()) or order_id.lower()


def fold_orders(rows: Iterable[Mapping[str, Any]]) -> list[OrderFacts]:
    """The customer's orders from their events, newest first. ``rows``: ``event``,
    ``timestamp``, ``order_id``, ``amount``, ``currency``, ``status``, ``carrier``,
    ``tracking_id``; the latest shipment update and refund of each order win."""
    placed: dict[str, dict[str, Any]] = {}
    later: list[Mapping[str, Any]] = []
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        if row["event"] == CatalogEvent.ORDER_COMPLETED:
            placed.setdefault(
                row["order_id"],
                {
                    "order_id": row["order_id"],
                    "placed_at": row["timestamp"],
                    "total": float(row["amount"] or 0),
                    "currency": row["currency"] or "EUR",
                },
            )
        else:
            later.append(row)
    for row in later:
        order = placed.get(row["order_id"])
        if order is None:
            continue
        if row["event"] == CatalogEvent.SHIPMENT_UPDATED:
            order.update(
                shipment_status=row["status"] or None,
                shipment_at=row["timestamp"],
                carrier=row.get("carrier") or None,
                tracking_id=row.get("tracking_id") or None,
            )
        elif row["event"] == CatalogEvent.ORDER_REFUNDED:
            order.update(refunded=float(row["amount"] or 0), refunded_at=row["timestamp"])
    return sorted((OrderFacts(**o) for o in placed.values()), key=lambda o: o.placed_at, reverse=True)
