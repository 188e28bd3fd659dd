"""An agent works a case to resolution at the console, in Chromium: Oskar is known to the shop
(his identify came through the collector), a case about him is opened through the API with an
SLA already passed; the agent finds it at the top of the queue marked overdue, opens it and sees
Oskar beside it, assigns it to herself, adds a note and resolves it. A viewer then sees the
case, its note and its state, but no button to change it; the browser reports no problem."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from scenarios.users import AnalyticsPython, InteractionApi, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.kafka]

OSKAR = "console-case-oskar"
SUBJECT = "Oskar's parcel arrived damaged"
NOTE = "Sent a replacement; the courier picks up the damaged one on Friday."


def test_an_agent_works_a_case_to_resolution(shop: Shop, api: InteractionApi, staff: Any) -> None:
    backend = AnalyticsPython(shop)
    backend.identify(OSKAR, {"email": "oskar.case@example.com", "firstName": "Oskar"})
    assert backend.flush().status_code == 200
    opened = api.post(
        "/v1/cases", {"customer_id": OSKAR, "subject": SUBJECT, "priority": "urgent", "sla_hours": 0.0001}
    )
    assert opened.status_code == 201, opened.text
    case_id = opened.json()["id"]
    agent = staff("agent")  # signs in while the identify goes through the pipeline
    known = eventually(lambda: (api.get(f"/v1/customers/{OSKAR}").json().get("contact") or {}).get("email"))
    assert known == "oskar.case@example.com"

    page = agent.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cases").click()
    top = page.locator("table.queue tbody tr").first
    expect(top).to_contain_text(SUBJECT)
    expect(top).to_contain_text("Overdue")
    top.get_by_role("link", name=SUBJECT).click()
    page.wait_for_url(f"**/console/cases/{case_id}")

    beside = page.locator("aside.customer-context")
    expect(beside).to_contain_text("oskar.case@example.com")
    expect(beside.get_by_role("link", name="The whole customer 360")).to_have_attribute(
        "href", f"/console/customers/{OSKAR}"
    )
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text("Overdue")

    page.get_by_role("button", name="Assign to me").click()
    expect(facts).to_contain_text(agent.email)
    page.get_by_label("Note", exact=True).fill(NOTE)
    page.get_by_role("button", name="Add the note").click()
    expect(page.locator("#notes")).to_contain_text(NOTE)
    page.get_by_role("button", name="Resolve", exact=True).click()
    expect(facts).to_contain_text("resolved since")

    after = api.get(f"/v1/cases/{case_id}").json()
    assert (after["status"], after["assignee"]) == ("resolved", agent.email) and after["resolved_at"]
    assert [(n["author"], n["text"]) for n in after["notes"]] == [(agent.email, NOTE)]

    viewer = staff("viewer", width=390)
    viewer.page.goto(f"/console/cases/{case_id}")
    expect(viewer.page.get_by_role("heading", name=SUBJECT)).to_be_visible()
    expect(viewer.page.locator("#notes")).to_contain_text(NOTE)
    expect(viewer.page.get_by_role("button")).to_have_count(1)  # signing out, nothing else
    assert agent.problems == [] and viewer.problems == [], (agent.problems, viewer.problems)
