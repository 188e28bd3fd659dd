"""Journeys as a shop uses them, on the started stack and only through what users touch: the
collector's HTTP API in the Segment shape, the interaction REST API and the mail as received.

Stories: a VIP entering a segment gets an email that shows the order that made them VIP; a
history import builds the profile and sends nothing; a rule disabled while actions wait
sends nothing, even when enabled again.
"""

import email
import time
from datetime import UTC, datetime, timedelta
from email import policy

import clickhouse_connect
import httpx
import pytest

from ecrm_embedded.net import free_port
from ecrm_embedded.stack import Stack, StackSettings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]
KEY = "journeys-server-key"
RULES = """
templates:
  - {id: thanks, subject: "Thank you for order {{ event.properties.order_id }}", text: "Thanks"}
  - {id: vip, subject: "You are now VIP", text: "Revenue {{ profile.revenue }} over {{ profile.orders }} orders"}
  - {id: cart, subject: "Your cart", text: "Still thinking?"}
rules:
  - {id: thanks, name: Thanks, category: transactional, trigger: {kind: event, event: Order Completed},
     actions: [{kind: email, template: thanks}]}
  - {id: vip, name: VIP, category: transactional, trigger: {kind: segment, segment: vip},
     actions: [{kind: email, template: vip}]}
  - {id: cart, name: Cart, trigger: {kind: event, event: Product Added},
     wait: {duration: 4s, cancel_on: [{event: Order Completed}]}, actions: [{kind: email, template: cart}]}
"""
VIP = {"id": "vip", "name": "VIP", "condition": {"kind": "trait", "trait": "revenue", "op": "gte", "value": 500}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("journeys")
    (data / "rules.yaml").write_text(RULES)
    settings = StackSettings(
        ecrm_data_dir=data / "ecrm", interaction_rules_file=data / "rules.yaml",
        kafka_port=free_port(), clickhouse_port=free_port(), smtp_port=free_port(), collector_port=free_port(),
        interaction_port=free_port(), aggregator_metrics_port=free_port(), collector_write_keys=KEY,
    )  # fmt: skip
    running = Stack(settings)
    try:
        running.start()
        yield running
    finally:
        running.stop()


class Shop:
    def __init__(self, stack: Stack) -> None:
        s = stack.settings
        self.stack = stack
        self.collector = httpx.Client(base_url=f"http://127.0.0.1:{s.collector_port}", auth=(KEY, ""))
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{s.interaction_port}",
            headers={"Authorization": f"Bearer {s.interaction_api_token}"},
        )
        self.clickhouse = clickhouse_connect.get_client(host="127.0.0.1", port=s.clickhouse_port)

    def send(self, path: str, body: dict) -> httpx.Response:
        response = self.collector.post(path, json=body)
        assert response.status_code == 200, response.text
        return response

    def mails_to(self, address: str) -> list[email.message.EmailMessage]:
        mails = [email.message_from_bytes(p.read_bytes(), policy=policy.default)
                 for p in sorted((self.stack.data_dir / "mail").glob("*.eml"))]  # fmt: skip
        return [m for m in mails if m["To"] == address]

    def decisions(self, **filters) -> list[dict]:
        response = self.api.get("/v1/decisions", params=filters)
        assert response.status_code == 200, response.text
        return response.json()


def _eventually(probe, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def _order(user: str, order_id: str, total: float, at: datetime | None = None) -> dict:
    body = {"type": "track", "userId": user, "event": "Order Completed", "messageId": f"order-{order_id}",
            "properties": {"order_id": order_id, "total": total}}  # fmt: skip
    return body | ({"timestamp": at.isoformat()} if at else {})


@pytest.fixture(scope="module")
def shop(stack) -> Shop:
    shop = Shop(stack)
    assert shop.api.put("/v1/segments/vip", json=VIP).status_code == 200
    return shop


def test_a_vip_entering_the_segment_gets_an_email_showing_the_order_that_made_them_vip(shop) -> None:
    shop.send("/v1/identify", {"userId": "vera", "traits": {"email": "vera@example.com", "firstName": "Vera"}})
    time.sleep(3)  # the definition reaches the aggregator
    shop.send("/v1/track", _order("vera", "v-1", 650))
    [vip] = _eventually(lambda: [m for m in shop.mails_to("vera@example.com") if m["Subject"] == "You are now VIP"])
    body = vip.get_body(("plain",)).get_content()
    assert "over 1 orders" in body and "Revenue 650" in body, body


def test_a_history_import_builds_the_profile_and_sends_nothing(shop) -> None:
    shop.send("/v1/identify", {"userId": "hana", "traits": {"email": "hana@example.com"}})
    past = datetime.now(UTC) - timedelta(days=40)
    history = [_order("hana", f"h-{n}", 130, past + timedelta(days=n)) for n in range(5)]
    answer = shop.send("/v1/import", {"batch": history})
    assert answer.json()["accepted"] == 5
    profile = _eventually(lambda: shop.clickhouse.query(
        "SELECT orders, toFloat64(revenue) FROM ecrm.profiles FINAL WHERE customer_id = 'hana' AND orders = 5"
    ).result_rows)  # fmt: skip
    assert profile == [(5, 650.0)]
    members = _eventually(lambda: shop.clickhouse.query(
        "SELECT customer_id FROM ecrm.segment_members WHERE segment_id = 'vip' AND customer_id = 'hana'"
    ).result_rows)  # fmt: skip
    assert members == [("hana",)]  # the import made her VIP ...
    time.sleep(4)
    assert shop.mails_to("hana@example.com") == []  # ... and sent neither five thank-yous nor a VIP email
    assert shop.decisions(customer_id="hana") == []
    shop.send("/v1/track", _order("hana", "h-live", 20))
    thanks = _eventually(lambda: shop.mails_to("hana@example.com"))
    assert [m["Subject"] for m in thanks] == ["Thank you for order h-live"]


def test_a_rule_disabled_while_actions_wait_sends_nothing_even_when_enabled_again(shop) -> None:
    shop.send("/v1/identify", {"userId": "carl", "traits": {"email": "carl@example.com"}})
    shop.send("/v1/track", {"userId": "carl", "event": "Product Added", "properties": {"product_id": "p-1"}})
    waiting = _eventually(lambda: shop.decisions(customer_id="carl", rule_id="cart", status="waiting"))
    assert len(waiting) == 1
    assert shop.api.post("/v1/rules/cart/disable").status_code == 200
    assert shop.api.post("/v1/rules/cart/enable").status_code == 200
    time.sleep(6)  # past the wait
    assert shop.mails_to("carl@example.com") == []
    [cancelled] = shop.decisions(customer_id="carl", rule_id="cart")
    assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "rule_disabled")
