"""The console's Data pages in Chromium: an admin adds a source and sees its write key once, an
invalid event sent with that key shows up among the dead letters with its reason, the key is
revoked and the collector refuses it; the pipeline health reads the other services' metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from scenarios.users import Shop, Staff

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_an_admin_makes_a_source_sees_its_bad_event_among_the_dead_letters_and_revokes_it(
    shop: Shop, staff: Callable[..., Staff]
) -> None:
    admin = staff("admin")
    page: Any = admin.page
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmation before revoking
    name = f"story-{uuid.uuid4().hex[:6]}"

    page.goto("/console/data/sources")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Kind").select_option("server")
    page.get_by_role("button", name="Add the source").click()
    key = page.locator("#write-key").inner_text()
    assert key.startswith("wks_"), key
    expect(page.get_by_text("shown this once")).to_be_visible()
    page.goto("/console/data/sources")
    assert key not in page.content(), "the key is shown once, never again"
    expect(page.get_by_role("row", name=name)).to_contain_text("in force")

    # An event without userId or anonymousId: the collector refuses it and dead-letters it.
    sent = httpx.post(f"{shop.collector}/v1/track", auth=(key, ""), json={"event": "Story Checked"}, timeout=10)
    assert sent.status_code == 400, sent.text
    rows = page.locator("#dead-letters tbody tr", has_text=f"collector:{name}")
    for _ in range(20):  # the page reads the topic when opened: open it until the entry is there
        page.goto("/console/data/dead-letters?reason=invalid_event")
        if rows.count():
            break
    expect(rows.first).to_contain_text("invalid_event")
    expect(rows.first).to_contain_text("userId")
    expect(page.locator("#dead-letter-reasons")).to_contain_text("invalid_event")

    page.goto("/console/data/sources")
    page.get_by_role("button", name=f"Revoke {name}").click()
    expect(page.get_by_role("row", name=name)).to_contain_text("revoked")
    deadline = time.monotonic() + 5
    refused = None
    while time.monotonic() < deadline:  # the collector re-reads the registry within a second
        refused = httpx.post(f"{shop.collector}/v1/track", auth=(key, ""), json={"userId": "u", "event": "E"})
        if refused.status_code == 401:
            break
    assert refused is not None and refused.status_code == 401, refused.text if refused else None

    page.goto("/console/data")
    expect(page.get_by_role("heading", name="collector")).to_contain_text("up")
    expect(page.get_by_role("heading", name="aggregator")).to_contain_text("up")
    assert admin.problems == [], admin.problems
