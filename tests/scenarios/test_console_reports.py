"""A marketer reads the reports in the console, in Chromium: the revenue of the shop's orders
with its chart, the customers behind a number (and their CSV), a funnel whose bad window is
named inline, and the trends chart drawn without a browser error."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from scenarios.users import DataTeam, Shop, Staff, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_a_marketer_reads_revenue_drills_into_its_customers_and_is_told_a_bad_filter(
    shop: Shop, staff: Callable[..., Staff]
) -> None:
    from playwright.sync_api import expect

    data = DataTeam(shop)
    stored = eventually(lambda: data.rows(
        "SELECT count() AS n FROM ecrm.business_events WHERE event = 'Order Completed' "
        "AND startsWith(customer_id, 'regular-')")[0]["n"] >= 6, timeout_s=30)  # fmt: skip
    assert stored, "the seed orders reach the reports' table through its materialized view"

    mia = staff("marketer")
    page = mia.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reports")
    page.get_by_role("link", name="Revenue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revenue")
    expect(page.locator("#report-chart canvas")).to_be_visible()
    table = page.locator("table.report")
    expect(table.get_by_role("columnheader", name="Average order value")).to_be_visible()
    orders = table.locator("tbody tr").first.locator("td").nth(2)
    expect(orders).to_have_text(re.compile(r"^[0-9][0-9,]*$"))
    assert int(orders.inner_text().replace(",", "")) >= 6

    orders.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Customers behind Revenue")
    expect(page.get_by_role("link", name="regular-0", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="regular-1", exact=True)).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all as CSV").click()
    with open(download.value.path(), encoding="utf-8") as exported_file:
        exported = exported_file.read().splitlines()
    assert exported[0].startswith("customer_id,orders,revenue")
    assert any(line.startswith("regular-0,") for line in exported[1:])

    page.goto("/console/reports/funnels?window_days=500")
    expect(page.locator("#e-window_days")).to_contain_text("less than or equal to 90")
    page.get_by_label("Window days").fill("7")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Product Viewed → Product Added → Order Completed")

    page.goto("/console/reports/trends?event=Order+Completed&interval=day")
    expect(page.locator("#report-chart canvas")).to_be_visible()
    assert mia.problems == [], mia.problems
