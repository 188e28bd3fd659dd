"""A marketer at the console, in Chromium: writes a template and previews it for a customer
(subject and text swapped in by htmx, the HTML in its sandboxed frame under its own CSP),
creates a rule that sends it; the customer's events arrive through the collector, the email
lands in the SMTP sink, the customer clicks it and orders, and the rules page counts the send,
the click, the conversion and its revenue. No CSP refusal or script error along the way."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from scenarios.users import AnalyticsPython, InteractionApi, Mailbox, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

CUSTOMER, ADDRESS = "rt-rosa", "rosa.rules@example.com"
HTML = """<html><head><style>h1 { color: #2150c8 }</style></head>
<body><h1>Hello {{ traits.firstName }}</h1>
<p style="margin: 0">Our spring picks: <a href="https://shop.example.com/spring">see them</a></p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>"""
SPEC = """category: marketing
trigger: {kind: event, event: Spring Catalog Viewed}
actions:
  - {kind: email, template: rt-spring}
"""


def test_a_marketer_writes_a_template_creates_a_rule_and_its_figures_count_the_email(
    shop: Shop, api: InteractionApi, mailbox: Mailbox, staff: Any
) -> None:
    backend = AnalyticsPython(shop)
    backend.identify(CUSTOMER, {"email": ADDRESS, "firstName": "Rosa"})
    assert backend.flush().status_code == 200
    mailbox.wait_for(ADDRESS, "Welcome")  # the shipped welcome: her profile has reached the service

    marketer = staff("marketer")
    page = marketer.page
    page.goto("/console/templates/new")
    page.get_by_label("Id", exact=True).fill("rt-spring")
    page.get_by_label("Subject", exact=True).fill("Spring picks for {{ traits.firstName }}")
    page.get_by_label("Text", exact=True).fill("Hello {{ traits.firstName }}, our spring picks are in.")
    page.get_by_label("HTML (optional)").fill(HTML)
    page.get_by_label("Preview for customer").fill(CUSTOMER)
    page.locator("#preview-subject").filter(has_text="Spring picks for Rosa").wait_for()
    assert "Hello Rosa, our spring picks are in." in page.locator("#preview-text").inner_text()
    page.frame_locator("iframe[name=html-preview]").get_by_role("heading", name="Hello Rosa").wait_for()
    page.get_by_role("button", name="Save template").click()
    page.wait_for_url("**/console/templates/rt-spring?saved=1")
    assert page.get_by_role("status").inner_text().startswith("Saved as version 1")

    page.goto("/console/rules/new")
    page.get_by_label("Id", exact=True).fill("rt-spring")
    page.get_by_label("Name", exact=True).fill("Spring picks when the catalog is viewed")
    page.get_by_label("Spec (YAML)").fill(SPEC)
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url("**/console/rules/rt-spring?saved=1")

    backend.track(CUSTOMER, "Spring Catalog Viewed", {"season": "spring"})
    assert backend.flush().status_code == 200
    [message] = mailbox.wait_for(ADDRESS, "Spring picks for Rosa")
    link = re.search(r'<a href="([^"]+)">see them</a>', message.html())
    assert link and "/v1/e/c/" in link[1], "the link goes through the click redirect"
    clicked = httpx.get(link[1].replace("&amp;", "&"), follow_redirects=False, headers={"User-Agent": "Mozilla/5.0"})
    assert clicked.headers["location"] == "https://shop.example.com/spring"
    backend.track(CUSTOMER, "Order Completed", {"order_id": "rt-o1", "total": 42.0, "currency": "EUR"})
    assert backend.flush().status_code == 200

    wanted = {"sent": "1", "clicked": "1", "converted": "1", "revenue": "42"}

    def figures() -> dict[str, str]:
        page.goto("/console/rules")
        row = page.locator('tr[data-rule="rt-spring"]')
        return {name: row.locator(f'[data-figure="{name}"]').inner_text().strip() for name in wanted}

    counted = eventually(lambda: figures() == wanted, timeout_s=30, every_s=1)
    assert counted, figures()
    assert marketer.problems == [], marketer.problems
