"""An unsubscribe from a real message: the welcome (marketing mail) carries RFC 8058 one-click
unsubscribe headers; a mailbox provider reads the raw ``List-Unsubscribe`` header and POSTs
``List-Unsubscribe=One-Click`` to its URL, and no further marketing mail goes out. A reader
can also follow the link in the text and confirm on the page. Opening the message through
Gmail's image proxy counts as a person's open. A page visitor holding the public browser key
cannot unsubscribe anybody."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from scenarios.users import (
    SHOP_ORIGIN,
    AnalyticsJs,
    AnalyticsPython,
    InteractionApi,
    Mailbox,
    Message,
    Shop,
    eventually,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

GMAIL_PROXY_UA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def _welcome(shop: Shop, mailbox: Mailbox, customer_id: str, address: str) -> Message:
    backend = AnalyticsPython(shop)
    backend.identify(customer_id, {"email": address, "firstName": "Una"})
    assert backend.flush().status_code == 200
    return mailbox.wait_for(address, "Welcome")[0]


def _marketing_after_unsubscribing(shop: Shop, api: InteractionApi, customer_id: str) -> dict[str, Any]:
    """The shop's next marketing message for the customer (the cart reminder), once decided."""
    browser = AnalyticsJs(shop)
    browser.user_id = customer_id
    assert browser.track("Product Added", {"product_id": "p-scarf", "name": "Scarf", "price": 25}).status_code == 200
    return api.decision(customer_id, "scenario-cart-reminder", timeout_s=20)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str]] = []
        self.images: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._href = values.get("href") or ""
        elif tag == "img":
            self.images.append(values.get("src") or "")

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.anchors.append((data.strip(), self._href))
            self._href = None


def _links(message: Message) -> _Links:
    parser = _Links()
    parser.feed(message.html())
    return parser


@pytest.fixture(scope="module")
def una_welcome(shop: Shop, mailbox: Mailbox) -> Message:
    return _welcome(shop, mailbox, "unsub-una", "una.unsub@example.com")


def test_an_unsubscribe_from_the_link_in_a_real_message(
    shop: Shop, api: InteractionApi, mailbox: Mailbox, data_team: Any
) -> None:
    welcome = _welcome(shop, mailbox, "unsub-uli", "uli.unsub@example.com")
    link = re.search(r"Unsubscribe: (\S+)", welcome.text())
    assert link, welcome.text()
    page = httpx.get(link.group(1), headers={"Accept": "text/html"})  # a scanner or a person: nothing changes yet
    assert page.status_code == 200 and "<form" in page.text
    assert api.customer("unsub-uli")["contact"]["unsubscribed_at"] is None
    action = re.search(r'action="([^"]+)"', page.text)
    assert action
    confirmed = httpx.post(httpx.URL(link.group(1)).join(action.group(1)), headers={"Accept": "text/html"})
    assert confirmed.status_code == 200 and "unsubscribed" in confirmed.text

    assert api.customer("unsub-uli")["contact"]["unsubscribed_at"] is not None
    decision = _marketing_after_unsubscribing(shop, api, "unsub-uli")
    assert (decision["status"], decision["reason"]) == ("suppressed", "unsubscribed"), decision
    assert [m.subject for m in mailbox.messages_to("uli.unsub@example.com")] == [welcome.subject]
    assert eventually(lambda: [e for e in data_team.events("unsub-uli") if e["event"] == "Unsubscribed"])


def test_an_unsubscribe_from_a_real_messages_headers(
    una_welcome: Message, shop: Shop, api: InteractionApi, mailbox: Mailbox
) -> None:
    header = una_welcome.header("List-Unsubscribe")
    assert header is not None
    entries = [e.strip() for e in header.split(",")]
    assert all(re.fullmatch(r"<[^<>\s]+>", e) for e in entries), header
    urls = [e[1:-1] for e in entries]
    one_click = next((u for u in urls if u.startswith(("https://", "http://"))), None)
    assert one_click and any(u.startswith("mailto:") for u in urls), urls
    assert una_welcome.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"

    # What Gmail or Yahoo do (RFC 8058 §3.2): a POST without cookies or redirects.
    posted = httpx.post(one_click, content=b"List-Unsubscribe=One-Click", follow_redirects=False,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert posted.status_code in (200, 202, 204), posted.text
    decision = _marketing_after_unsubscribing(shop, api, "unsub-una")
    assert (decision["status"], decision["reason"]) == ("suppressed", "unsubscribed"), decision
    assert [m.subject for m in mailbox.messages_to("una.unsub@example.com")] == [una_welcome.subject]


def test_the_unsubscribe_link_in_the_html_is_not_a_tracked_click(una_welcome: Message, shop: Shop) -> None:
    links = dict(_links(una_welcome).anchors)
    assert links["Unsubscribe"].startswith(f"{shop.interaction}/u/"), links["Unsubscribe"]
    assert links["Visit the shop"].startswith(f"{shop.collector}/v1/e/c/")  # other links are tracked


def test_an_open_through_gmails_image_proxy_counts_as_a_persons_open(
    una_welcome: Message, shop: Shop, data_team: Any
) -> None:
    pixel = next(src for src in _links(una_welcome).images if "/v1/e/o/" in src)
    time.sleep(max(0.0, una_welcome.path.stat().st_mtime + 2.5 - time.time()))  # she opens it a moment later
    opened = httpx.get(pixel, headers={"User-Agent": GMAIL_PROXY_UA, "Accept": "image/*"})
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    rows = eventually(lambda: data_team.rows(
        "SELECT JSONExtractBool(properties, 'machine_open') AS machine FROM ecrm.customer_events "
        "WHERE customer_id = 'unsub-una' AND event = 'Email Opened'"))  # fmt: skip
    assert [r["machine"] for r in rows] == [False]


@pytest.mark.parametrize("origin", [SHOP_ORIGIN, None], ids=["from-the-shop-page", "without-origin"])
def test_a_page_visitor_cannot_unsubscribe_a_customer(origin: str | None, shop: Shop) -> None:
    body = {"type": "track", "event": "Unsubscribed", "userId": "unsub-vic", "properties": {"list_id": "marketing"},
            "writeKey": shop.browser_key, "anonymousId": "prankster"}  # fmt: skip
    headers = {"Content-Type": "text/plain"} | ({"Origin": origin} if origin else {})
    response = httpx.post(f"{shop.collector}/v1/t", content=json.dumps(body), headers=headers)
    assert 400 <= response.status_code < 500, response.text
