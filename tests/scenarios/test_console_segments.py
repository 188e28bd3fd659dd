"""A marketer builds a segment in the console, in Chromium: the editor checks the definition
as she types (a misspelt trait is named), shows how many customers match and some of them
before she saves, and the saved segment is in the list; the home page shows the day's figures.
All under the strict Content-Security-Policy (no refusal in the browser's console)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

import pytest
from scenarios.users import DataTeam, Shop, Staff, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _condition(trait: str) -> str:
    """Repeat buyers among the shop's regular shoppers (regular-0 bought three times, -1 twice, -2 once)."""
    return json.dumps({"kind": "all", "conditions": [
        {"kind": "trait", "trait": trait, "op": "gte", "value": 2},
        {"kind": "trait", "trait": "customer_id", "op": "in", "value": ["regular-0", "regular-1", "regular-2"]},
    ]}, indent=2)  # fmt: skip


def test_a_marketer_builds_a_segment_seeing_whom_it_holds_before_saving(
    shop: Shop, staff: Callable[..., Staff]
) -> None:
    from playwright.sync_api import expect

    data = DataTeam(shop)
    folded = eventually(lambda: (data.profile("regular-1") or {}).get("orders", 0) >= 2, timeout_s=30)
    assert folded, "the seed orders are folded into the regulars' profiles"

    mia = staff("marketer")
    page = mia.page
    # other stories open cases: any count
    expect(page.locator("#fig-cases-open .figure")).to_have_text(re.compile(r"^[0-9][0-9,]*$"))
    expect(page.locator("#fig-customers .figure")).to_have_text(re.compile(r"^[0-9][0-9,]*$"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()

    segment_id = f"repeat-buyers-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Id").fill(segment_id)
    page.get_by_label("Name").fill("Repeat buyers")
    page.get_by_label("Condition").fill(_condition("ordres"))
    preview = page.locator("#preview")
    expect(preview).to_contain_text("condition.all.conditions.0.trait")
    expect(preview).to_contain_text("no profile field 'ordres'")

    page.get_by_label("Condition").fill(_condition("orders"))
    expect(preview).to_contain_text("Valid:")
    expect(page.locator("#preview-count")).to_have_text("2")
    expect(preview.get_by_role("link", name="regular-0")).to_be_visible()
    expect(preview.get_by_role("link", name="regular-1")).to_be_visible()

    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(f"**/console/segments/{segment_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Repeat buyers")
    page.get_by_role("link", name="← Segments").click()
    expect(page.get_by_role("link", name="Repeat buyers")).to_be_visible()
    assert mia.problems == [], mia.problems
