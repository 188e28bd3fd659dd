"""A shop's first day: a visitor browses (analytics.js), signs up, orders (analytics-node,
server side), leaves the confirmation page (RudderStack beacon); the welcome and the thank-you
arrive, and the data team sees one customer with their visit in ClickHouse."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from scenarios.users import (
    AnalyticsJs,
    AnalyticsNode,
    AnalyticsPython,
    InteractionApi,
    Mailbox,
    Message,
    RudderBeacon,
    Shop,
    eventually,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

ADA = "day1-ada"
ADA_EMAIL = "ada.day1@example.com"


@dataclass
class FirstDay:
    browser: AnalyticsJs
    welcome: Message
    thanks: Message


@pytest.fixture(scope="module")
def first_day(shop: Shop, mailbox: Mailbox, data_team: Any) -> FirstDay:
    browser = AnalyticsJs(shop)
    assert browser.page("Shop", "Home", "/").status_code == 200
    assert browser.page("Shop", "Sneakers", "/sneakers").status_code == 200
    # She browses a while before signing up: by then her anonymous visit is a profile of its own.
    _eventually_profile(data_team, browser.anonymous_id, lambda p: p["page_views"] == 2)
    assert browser.identify(ADA, {"email": ADA_EMAIL, "firstName": "Ada"}).status_code == 200

    backend = AnalyticsNode(shop)
    sneaker = {"product_id": "p-sneaker", "price": 120.5, "quantity": 1}
    backend.track(
        ADA, "Order Completed", {"order_id": "day1-o1", "total": 120.5, "currency": "EUR", "products": [sneaker]}
    )
    sent = backend.flush()
    assert (sent.status_code, sent.json()["accepted"]) == (200, 1), sent.text

    beacon = RudderBeacon(shop)
    beacon.anonymous_id = browser.anonymous_id
    left = beacon.send([{"type": "track", "event": "Order Confirmation Left", "userId": ADA,
                         "properties": {"order_id": "day1-o1"}}])  # fmt: skip
    assert left.status_code == 200, left.text

    welcome = mailbox.wait_for(ADA_EMAIL, "Welcome")[0]
    thanks = mailbox.wait_for(ADA_EMAIL, "Thank you for your order")[0]
    return FirstDay(browser, welcome, thanks)


def test_a_shops_first_day(first_day: FirstDay, mailbox: Mailbox, data_team: Any, api: InteractionApi) -> None:
    assert first_day.welcome.subject == "Welcome, Ada!"
    assert ADA_EMAIL in first_day.welcome.text()
    assert first_day.thanks.subject == "Thank you for your order day1-o1"
    thanks = first_day.thanks.text()
    assert "120.5 EUR" in thanks
    assert "You may also like: p-socks, p-cap" in thanks  # the shop's best sellers, not what she just bought
    assert len(mailbox.messages_to(ADA_EMAIL)) == 2

    # The data team: one customer, her anonymous visit stitched to her.
    profile = _eventually_profile(data_team, ADA, lambda p: p["orders"] == 1 and p["page_views"] == 2)
    assert (profile["email"], profile["orders"], float(profile["revenue"])) == (ADA_EMAIL, 1, 120.5)
    events = data_team.events(ADA)
    kinds = sorted(
        e["event"] or e["type"] for e in events if e["type"] != "track" or not e["event"].startswith("Email")
    )
    assert kinds == ["Order Completed", "Order Confirmation Left", "identify", "page", "page"], kinds

    # Support sees the same customer and both messages.
    view = api.customer(ADA)
    assert sorted(m["rule_id"] for m in view["messages"]["sent"]) == ["thanks-for-order", "welcome-on-first-identify"]


def test_the_data_team_sees_which_pages_were_viewed(first_day: FirstDay, data_team: Any) -> None:
    rows = data_team.rows(
        "SELECT name, category FROM ecrm.customer_events WHERE customer_id = {c:String} AND type = 'page' "
        "ORDER BY timestamp",
        c=ADA,
    )
    assert [(r["name"], r["category"]) for r in rows] == [("Home", "Shop"), ("Sneakers", "Shop")]


def test_support_reads_recent_events_as_objects(first_day: FirstDay, api: InteractionApi) -> None:
    recent = api.customer(ADA)["recent_events"]
    order = next(e for e in recent if e["event"] == "Order Completed")
    assert order["properties"]["order_id"] == "day1-o1"


def test_signing_up_fires_rules_for_the_customer_only(first_day: FirstDay, api: InteractionApi) -> None:
    api.decision(ADA, "welcome-on-first-identify")
    assert api.decisions(first_day.browser.anonymous_id) == []


def test_a_customer_who_signs_up_without_an_address_gets_no_welcome_yet(shop: Shop, api: InteractionApi) -> None:
    client = AnalyticsPython(shop)
    client.identify("day1-ben", {"firstName": "Ben"})
    assert client.flush().status_code == 200
    decision = api.decision("day1-ben", "welcome-on-first-identify")
    assert (decision["status"], decision["reason"]) == ("suppressed", "no_email_address")


def test_the_welcome_comes_once_the_address_arrives(shop: Shop, api: InteractionApi, mailbox: Mailbox) -> None:
    test_a_customer_who_signs_up_without_an_address_gets_no_welcome_yet(shop, api)
    client = AnalyticsPython(shop)
    client.identify("day1-ben", {"firstName": "Ben", "email": "ben.day1@example.com"})
    assert client.flush().status_code == 200
    address_known = eventually(lambda: api.customer("day1-ben")["contact"]["email"] == "ben.day1@example.com")
    assert address_known, "the interaction service has his address"
    assert mailbox.wait_for("ben.day1@example.com", "Welcome", timeout_s=5)


def test_a_web_developer_with_a_wrong_key_is_told_which_field_is_wrong(shop: Shop) -> None:
    response = httpx.post(f"{shop.collector}/v1/batch", auth=("wk-typo", ""), json={"batch": [{"type": "page"}]})
    assert response.status_code == 401
    errors = response.json()["error"]["errors"]
    assert errors and all(e["field"] and e["rule"] for e in errors), errors


def _eventually_profile(data_team: Any, customer_id: str, ready: Any, timeout_s: float = 30) -> dict[str, Any]:
    found = eventually(lambda: (p := data_team.profile(customer_id)) is not None and ready(p) and p, timeout_s)
    assert found, f"profile of {customer_id}: {data_team.profile(customer_id)}"
    return found  # type: ignore[no-any-return]


def test_a_web_developer_adds_a_source_as_the_readme_says(shop: Shop) -> None:
    """In the directory `make run` was started from, in another shell (no COLLECTOR_SOURCES_FILE)."""
    env = {k: v for k, v in os.environ.items() if k != "COLLECTOR_SOURCES_FILE"} | {"LOG_LEVEL": "WARNING"}
    added = subprocess.run([sys.executable, "-m", "ecrm_collector", "sources", "add", "shop-app", "--kind", "server"],
                           cwd=shop.data_dir.parent, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    event = {"userId": "day1-app", "event": "App Opened", "properties": {}}
    url = f"{shop.collector}/v1/track"
    accepted = eventually(lambda: httpx.post(url, auth=(key, ""), json=event).status_code == 200, timeout_s=10)
    assert accepted, "the running collector accepts the new key"
