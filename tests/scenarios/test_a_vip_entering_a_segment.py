"""A VIP entering a segment: Vera signs up and places an order of 650; that order takes her
into the marketer's VIP segment (revenue of 500 or more), and the rule on entering it emails
her, showing the revenue that order made, formatted as money."""

from __future__ import annotations

import re
from typing import Any

import pytest
from scenarios.users import AnalyticsNode, AnalyticsPython, InteractionApi, Mailbox, Message, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

VERA = "vip-vera"
VERA_EMAIL = "vera.vip@example.com"


@pytest.fixture(scope="module")
def vip_email(shop: Shop, mailbox: Mailbox) -> Message:
    signup = AnalyticsPython(shop)
    signup.identify(VERA, {"email": VERA_EMAIL, "firstName": "Vera"})
    assert signup.flush().status_code == 200
    mailbox.wait_for(VERA_EMAIL, "Welcome")
    backend = AnalyticsNode(shop)
    coat = {"product_id": "p-coat", "price": 650, "quantity": 1}
    backend.track(VERA, "Order Completed", {"order_id": "vip-o1", "total": 650, "currency": "EUR", "products": [coat]})
    assert backend.flush().status_code == 200
    return mailbox.wait_for(VERA_EMAIL, "You are now VIP")[0]


def test_a_vip_entering_a_segment(vip_email: Message, data_team: Any, api: InteractionApi, mailbox: Mailbox) -> None:
    assert vip_email.text().startswith("Hello Vera, you are now VIP.")
    members = data_team.rows("SELECT customer_id FROM ecrm.segment_members WHERE segment_id = 'scenario-vip'")
    assert VERA in {m["customer_id"] for m in members}
    profile = data_team.profile(VERA)
    assert (profile["orders"], float(profile["revenue"])) == (1, 650.0)
    assert [s["segment_id"] for s in api.customer(VERA)["segments"]] == ["scenario-vip"]
    assert len([m for m in mailbox.messages_to(VERA_EMAIL) if "VIP" in m.subject]) == 1


def test_the_vip_email_shows_the_revenue_after_the_order_as_money(vip_email: Message) -> None:
    text = vip_email.text()
    assert re.search(r"Revenue \D{0,3}650\.00\b", text), text  # "650.00", "€650.00": money, after the order
    assert "650.0000" not in text


def test_the_marketer_finds_the_vip_segment_in_the_list(api: InteractionApi) -> None:
    listed = api.get("/v1/segments")
    assert listed.status_code == 200, listed.text
    assert "scenario-vip" in {s["id"] for s in listed.json()}
    assert eventually(lambda: api.get("/v1/segments/scenario-vip").status_code == 200)
