"""A marketer reads the reports in the console, in Chromium: the revenue of the shop's orders
with its chart, the customers behind a number (and their CSV), a funnel whose bad window is
named inline, and the trends chart drawn without a browser error."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from scenarios.users import DataTeam, Mailbox, Shop, Staff, eventually

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


def test_a_marketer_saves_reports_on_a_dashboard_and_a_subscriber_receives_it(
    shop: Shop, staff: Callable[..., Staff], mailbox: Mailbox
) -> None:
    """Saved with a rolling range, arranged on a dashboard, sent now to a subscriber: the mail
    (as a mail client reads it) has the charts inline and the tables attached as CSV."""
    from playwright.sync_api import expect

    mia = staff("marketer")
    page = mia.page
    page.goto("/console/reports/revenue?by=channel")
    page.get_by_text("Save this report").click()
    page.get_by_label("Name").fill("Revenue by channel, last 30 days")
    page.get_by_role("button", name="Save report").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revenue by channel, last 30 days")
    expect(page.get_by_text("the last 30 days, rolling")).to_be_visible()

    page.goto("/console/reports/trends?event=Order+Completed")
    page.get_by_text("Save this report").click()
    page.get_by_label("Name").fill("   ")  # passes the browser's check, not the API's
    page.get_by_role("button", name="Save report").click()
    expect(page.locator("#e-save_name")).to_contain_text("at least 1 character")  # said inline, nothing saved
    page.get_by_label("Name").fill("Orders per day")
    page.get_by_role("button", name="Save report").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders per day")

    page.get_by_role("link", name="← Reports").click()
    page.get_by_role("link", name="New dashboard").click()
    page.get_by_label("Name").fill("Monday numbers")
    page.get_by_label("Revenue by channel, last 30 days").check()
    page.get_by_label("Orders per day").check()
    page.get_by_role("button", name="Save dashboard").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Monday numbers")
    expect(page.locator(".dashboard-panel canvas")).to_have_count(2)

    address = "boss@shop.example"
    page.get_by_label("Send to (addresses, comma-separated)").fill(address)
    page.get_by_label("Every").select_option("weekly")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("#subscriptions")).to_contain_text(f"weekly at 7:00 UTC to {address}")
    page.get_by_role("button", name="Send now").click()
    expect(page.get_by_role("status")).to_contain_text("Sent")

    [mail] = mailbox.wait_for(address, "Monday numbers", timeout_s=30)
    parsed = mail.parsed
    html = parsed.get_body(preferencelist=("html",)).get_content()
    images = [p for p in parsed.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2 and "Revenue by channel, last 30 days" in html and "Orders per day" in html
    assert all(f"cid:{str(p['Content-ID']).strip('<>')}" in html for p in images)
    attached = [p.get_filename() for p in parsed.iter_attachments() if p.get_content_type() == "text/csv"]
    assert len(attached) == 2, attached
    assert mia.problems == [], mia.problems
