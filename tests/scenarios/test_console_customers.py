"""A support agent looks a customer up, on a phone: the customer signs up through the
collector, the welcome goes out and its provider reports it delivered; the agent searches for
her by name, opens her 360, sees the welcome with its fate and copy and her timeline, opens a
case and writes a note on it. Nothing the browser ran was refused (strict CSP)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from scenarios.users import AnalyticsPython, InteractionApi, Mailbox, SendGrid, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

CORA, ADDRESS = "console-cora", "cora.console@example.com"


def test_an_agent_finds_a_customer_and_works_her_360(
    shop: Shop, api: InteractionApi, mailbox: Mailbox, data_team: Any, staff: Any
) -> None:
    from playwright.sync_api import expect

    backend = AnalyticsPython(shop)
    backend.identify(CORA, {"email": ADDRESS, "firstName": "Cora", "lastName": "Quill", "plan": "pro"})
    assert backend.flush().status_code == 200
    welcome = mailbox.wait_for(ADDRESS, "Welcome")[0]
    esp = SendGrid(shop)
    delivered = {"email": ADDRESS, "timestamp": int(time.time()), "event": "delivered", "response": "250 OK",
                 "smtp-id": welcome.header("Message-ID"), "sg_event_id": esp._new_event_id(),
                 "sg_message_id": f"{secrets.token_urlsafe(16)}.sg-1", **esp.custom_args(welcome)}  # fmt: skip
    assert esp.post([delivered]).status_code == 200
    eventually(lambda: data_team.rows(
        "SELECT 1 FROM ecrm.events WHERE customer_id = {c:String} AND event = 'Email Delivered'", c=CORA))  # fmt: skip
    eventually(lambda: data_team.rows(
        "SELECT 1 FROM ecrm.customer_profiles WHERE customer_id = {c:String}", c=CORA))  # fmt: skip

    agent = staff("agent", width=390)
    page = agent.page
    page.goto("/console/customers")
    page.get_by_label("Search").fill("Quill")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=CORA).click()

    page.wait_for_url(f"**/console/customers/{CORA}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cora Quill")
    messages = page.locator("#messages")
    expect(messages).to_contain_text(welcome.subject)
    expect(messages.locator("summary .badge")).to_have_text("delivered")
    messages.locator("summary").first.click()
    expect(messages.locator("pre.preview").first).to_contain_text("Cora")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Rule welcome-on-first-identify planned email: sent")
    expect(timeline).to_contain_text("Email Delivered")
    expect(page.locator("#scores")).to_contain_text("lifecycle stage")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "nothing wider than the phone"

    page.get_by_label("Subject").fill("Asked about her order")
    page.get_by_role("button", name="Open the case").click()
    page.wait_for_url(f"**/console/customers/{CORA}#cases")
    page.get_by_label("Note", exact=True).fill("Called her back: all fine")
    page.get_by_role("button", name="Add the note").click()
    expect(page.locator("#cases")).to_contain_text("Called her back: all fine")
    [case] = api.get("/v1/cases", customer_id=CORA).json()
    assert case["subject"] == "Asked about her order" and case["notes"][0]["author"] == agent.email
    assert agent.problems == [], agent.problems
