"""A broadcast from the console, in Chromium: two shoppers join a small segment through the
collector; a marketer writes the broadcast in the form, sees on its page that both will be
sent to (the audience after the contact policy), schedules it, and both mails land in the
SMTP sink; the page then shows it done, with two sent."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from scenarios.users import AnalyticsPython, InteractionApi, Mailbox, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_a_marketer_sends_a_broadcast_to_a_small_segment(
    shop: Shop, api: InteractionApi, staff: Any, mailbox: Mailbox
) -> None:
    from playwright.sync_api import expect

    tag = uuid.uuid4().hex[:6]
    segment, template = f"bc-{tag}", f"bc-letter-{tag}"
    condition = {"kind": "event", "event": "Broadcast Story Joined", "where": {"tag": tag}, "within_days": 1}
    defined = api.put(f"/v1/segments/{segment}", {"id": segment, "name": "Letter readers", "condition": condition})
    assert defined.status_code == 200, defined.text
    letter = {
        "id": template,
        "subject": "Winter letter for {{ traits.firstName }}",
        "text": "Hello {{ traits.firstName }}",
    }
    written = api.put(f"/v1/templates/{template}", letter)
    assert written.status_code == 200, written.text
    people = {f"bc-{tag}-{name.lower()}": (f"bc-{tag}-{name.lower()}@example.com", name) for name in ("Ana", "Bo")}
    shopper = AnalyticsPython(shop)
    for customer_id, (address, name) in people.items():
        shopper.identify(customer_id, {"email": address, "firstName": name})
        shopper.track(customer_id, "Broadcast Story Joined", {"tag": tag})
    assert shopper.flush().status_code == 200

    def joined() -> bool:
        answers = [api.get(f"/v1/customers/{customer_id}") for customer_id in people]
        return all(a.status_code == 200 and segment in [s["segment_id"] for s in a.json()["segments"]] for a in answers)

    assert eventually(joined, timeout_s=30), "both shoppers are members of the segment"

    marketer = staff("marketer")
    page = marketer.page
    page.goto("/console/broadcasts")
    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Name", exact=True).fill("Winter letter")
    page.get_by_label("Segment", exact=True).fill(segment)
    page.get_by_label("Template A").select_option(template)
    page.get_by_label("Send rate (messages per minute)").fill("60")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#to-send")).to_have_text("2")
    expect(page.locator("#status")).to_have_text("draft")
    page.get_by_role("button", name="Count again").click()
    expect(page.get_by_role("status")).to_contain_text("the audience is counted again")
    expect(page.locator("#to-send")).to_have_text("2")
    page.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("status")).to_contain_text("schedule")
    for address, name in people.values():
        [mail] = mailbox.wait_for(address, "Winter letter", timeout_s=20)
        assert mail.subject == f"Winter letter for {name}"
    page.reload()
    expect(page.locator("#status")).to_have_text("done")
    expect(page.locator("#results")).to_contain_text("bc-letter")
    assert marketer.problems == [], marketer.problems
