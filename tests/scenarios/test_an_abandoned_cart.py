"""An abandoned cart: two customers sign up (their welcome arrives), look at a product and put
it in the cart. One orders straight away and gets no reminder; the other walks away and gets
the reminder a few seconds later (the scenario's copy of the shipped cart reminder, 4 s wait),
with products the shop recommends."""

from __future__ import annotations

import re
from typing import Any

import pytest
from scenarios.users import CATALOGUE, AnalyticsJs, AnalyticsPython, InteractionApi, Mailbox, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

REMINDER = "scenario-cart-reminder"
TRAIL_RUNNER = {"product_id": "p-trail", "name": "Trail Runner", "price": 89.0, "currency": "EUR"}


def _shop_for_a_trail_runner(shop: Shop, mailbox: Mailbox, customer_id: str, address: str, name: str) -> AnalyticsJs:
    backend = AnalyticsPython(shop)
    backend.identify(customer_id, {"email": address, "firstName": name})
    assert backend.flush().status_code == 200
    mailbox.wait_for(address, "Welcome")
    browser = AnalyticsJs(shop)
    assert browser.identify(customer_id, {"firstName": name}).status_code == 200
    assert browser.track("Product Viewed", TRAIL_RUNNER).status_code == 200
    assert browser.track("Product Added", {**TRAIL_RUNNER, "quantity": 1}).status_code == 200
    return browser


def test_an_abandoned_cart_with_the_order(shop: Shop, api: InteractionApi, mailbox: Mailbox) -> None:
    address = "carla.cart@example.com"
    _shop_for_a_trail_runner(shop, mailbox, "cart-carla", address, "Carla")
    # She takes a moment to check out: by then the reminder is waiting.
    waiting = eventually(lambda: [d for d in api.decisions("cart-carla") if d["rule_id"] == REMINDER], timeout_s=10)
    assert [d["status"] for d in waiting] == ["waiting"], waiting
    backend = AnalyticsPython(shop)
    backend.track("cart-carla", "Order Completed", {"order_id": "cart-o1", "total": 89.0, "currency": "EUR",
                                                    "products": [{**TRAIL_RUNNER, "quantity": 1}]})  # fmt: skip
    assert backend.flush().status_code == 200

    decision = api.decision("cart-carla", REMINDER, timeout_s=20)
    assert decision["status"] == "cancelled", decision
    assert decision["reason"].startswith("wait cancelled by Order Completed"), decision
    mailbox.wait_for(address, "Thank you for your order cart-o1")
    assert not [m for m in mailbox.messages_to(address) if "Still thinking" in m.subject]


def test_an_abandoned_cart_without_the_order(shop: Shop, api: InteractionApi, mailbox: Mailbox) -> None:
    address = "chris.cart@example.com"
    _shop_for_a_trail_runner(shop, mailbox, "cart-chris", address, "Chris")

    decision = api.decision("cart-chris", REMINDER, timeout_s=20)
    assert (decision["status"], decision["reason"]) == ("sent", "allowed"), decision
    reminder = mailbox.wait_for(address, "Still thinking about Trail Runner?")[0]
    text = reminder.text()
    assert "Trail Runner is still waiting in your cart" in text
    liked = re.search(r"You may also like: (.+)", text)
    assert liked, text
    recommended = [p.strip() for p in liked.group(1).split(",")]
    assert recommended and set(recommended) <= {*CATALOGUE, "p-trail"} - {"p-trail"}, recommended


def test_the_marketer_lists_the_reminders_decisions(shop: Shop, api: InteractionApi, mailbox: Mailbox) -> None:
    _shop_for_a_trail_runner(shop, mailbox, "cart-cora", "cora.cart@example.com", "Cora")
    api.decision("cart-cora", REMINDER, timeout_s=20)
    listed: list[dict[str, Any]] = api.get("/v1/decisions", rule_id=REMINDER, limit=1000).json()
    assert {d["rule_id"] for d in listed} == {REMINDER}, {d["rule_id"] for d in listed}
    assert "cart-cora" in {d["customer_id"] for d in listed}


def test_a_buy_now_order_sent_with_the_cart_add_gets_no_reminder(
    shop: Shop, api: InteractionApi, mailbox: Mailbox
) -> None:
    backend = AnalyticsPython(shop)
    backend.identify("cart-bea", {"email": "bea.cart@example.com", "firstName": "Bea"})
    assert backend.flush().status_code == 200
    mailbox.wait_for("bea.cart@example.com", "Welcome")
    backend.track("cart-bea", "Product Added", {**TRAIL_RUNNER, "quantity": 1})
    backend.track("cart-bea", "Order Completed", {"order_id": "cart-o2", "total": 89.0, "currency": "EUR",
                                                  "products": [{**TRAIL_RUNNER, "quantity": 1}]})  # fmt: skip
    assert backend.flush().status_code == 200  # one request, as analytics-python batches a "buy now"
    decision = api.decision("cart-bea", REMINDER, timeout_s=20)
    assert decision["status"] == "cancelled", decision
    assert decision["reason"].startswith("wait cancelled by Order Completed ("), decision
