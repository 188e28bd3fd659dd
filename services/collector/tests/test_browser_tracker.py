"""ecrm.js in a real browser against the real collector: headless Chromium, real CORS, Kafka.

The collector runs under uvicorn on one loopback port; the shop page is served from another
port, so it is a different origin and the browser applies CORS as it would in production.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import SourceRegistry
from ecrm_embedded.net import free_port
from ecrm_embedded.testing import headless_chromium, read_topic
from ecrm_schemas.events import Event, decode_event
from ecrm_schemas.topics import EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.browser]


SHOP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script>
  window.analytics = window.analytics || [];
  ["page", "track", "identify"].forEach(function (m) {{
    analytics[m] = function () {{ analytics.push([m].concat([].slice.call(arguments))); }};
  }});
  analytics.track("Shop Opened", {{from: "stub"}});
</script>
<script src="{collector}/v1/ecrm.js" data-write-key="{key}" async></script>
</head><body>
<button id="buy" data-ecrm-track="CTA Clicked" data-ecrm-prop-plan="pro">Buy
   <b>now</b></button>
<a href="/next.html" data-ecrm-track>Next page</a>
</body></html>
"""
NEXT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Next</title>
<script src="{collector}/v1/ecrm.js" data-write-key="{key}" async></script>
</head><body><p>Thanks</p></body></html>
"""


@dataclass
class Seen:
    """One request the collector answered."""

    method: str
    path: str
    status: int
    headers: dict[str, str]


@dataclass
class Collector:
    url: str
    seen: list[Seen] = field(default_factory=list)

    def batches_from(self, origin: str) -> list[Seen]:
        return [s for s in self.seen if s.path == "/v1/batch" and s.headers.get("origin") == origin]


class _Recorded:
    """ASGI wrapper around the real app that notes each request's method, path, headers and status."""

    def __init__(self, app: Any, seen: list[Seen]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def noting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.seen.append(Seen(scope["method"], scope["path"], message["status"], headers))
            await send(message)

        await self.app(scope, receive, noting_send)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_directory(directory: Path, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, name=f"pages-{port}", daemon=True).start()
    return server


def wait_until(
    condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition", pause: Any = time.sleep
) -> Any:
    """Poll ``condition`` until it returns something truthy. Playwright's sync API runs page
    callbacks (routes, console) only inside its own calls: pass ``pause`` = the page's wait."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        pause(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Site:
    collector: Collector
    allowed_origin: str
    other_origin: str
    bootstrap: str


@pytest.fixture(scope="module")
def site(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The collector over HTTP, with a browser source for one page origin, and two page servers:
    the source's origin and one it does not list."""
    base = tmp_path_factory.mktemp("browser")
    pages = base / "pages"
    pages.mkdir()
    # The page servers bind port 0 and say which port they got: a port picked first and bound
    # later can be taken in between by another process's connection.
    page_servers = [_serve_directory(pages, 0), _serve_directory(pages, 0)]
    allowed_origin, other_origin = (f"http://127.0.0.1:{s.server_address[1]}" for s in page_servers)
    collector_port = free_port()

    registry = SourceRegistry()
    _, key = registry.add("shop-web", "browser", (allowed_origin,))
    registry.save(base / "sources.json")
    settings = CollectorSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap, collector_sources_file=base / "sources.json"
    )
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    collector = Collector(f"http://127.0.0.1:{collector_port}")
    app = _Recorded(create_app(settings, producer), collector.seen)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=collector_port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="collector", daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="the collector to listen")

    (pages / "shop.html").write_text(SHOP_PAGE.format(collector=collector.url, key=key))
    (pages / "next.html").write_text(NEXT_PAGE.format(collector=collector.url, key=key))

    yield Site(collector, allowed_origin, other_origin, kafka_broker.bootstrap)

    for page_server in page_servers:
        page_server.shutdown()
    server.should_exit = True
    thread.join(10)
    producer.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with headless_chromium("the browser tracker tests") as browser:
        yield browser


def events_of(bootstrap: str, anonymous_id: str, count: int, timeout_s: float = 15.0) -> list[Event]:
    """The events of one visitor on the events topic, once at least ``count`` arrived."""

    def mine() -> list[Event]:
        records = read_topic(bootstrap, EVENTS.name, expect=1_000_000, timeout_s=0.5)
        events = [decode_event(value) for _, value in records]
        found = [e for e in events if e.anonymousId == anonymous_id]
        return found if len(found) >= count else []

    return wait_until(mine, timeout_s, f"{count} events of {anonymous_id}")


def test_page_views_clicks_identify_and_the_unload_beacon_reach_kafka(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    page = context.new_page()
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)

    earlier = len(site.collector.batches_from(site.allowed_origin))
    page.goto(f"{site.allowed_origin}/shop.html")
    # The stub's queued track and the automatic page view leave together, 1 s after load.
    wait_until(lambda: len(site.collector.batches_from(site.allowed_origin)) > earlier, what="the first batch")
    anonymous_id = page.evaluate("analytics.user().anonymousId")
    cookies = {c["name"]: c["value"] for c in context.cookies(site.allowed_origin)}
    assert cookies["ecrm_aid"] == anonymous_id
    assert page.evaluate("localStorage.getItem('ecrm_aid')") == anonymous_id

    # Queued, then flushed by the beacon when the link navigates away (well before the 1 s timer).
    page.click("#buy")
    page.evaluate('analytics.identify("u-browser-1", {email: "b1@example.com", plan: "pro"})')
    page.click("a[data-ecrm-track]")
    page.wait_for_url("**/next.html")
    page.wait_for_function("window.analytics && window.analytics.initialized")
    assert page.evaluate("analytics.user()") == {"anonymousId": anonymous_id, "userId": "u-browser-1"}
    events = events_of(site.bootstrap, anonymous_id, count=6)
    context.close()

    # One visitor: events are keyed by userId once known, so Kafka's order across partitions means nothing.
    named = {getattr(e, "event", None) or f"{e.type} {e.context.page and e.context.page['path']}": e for e in events}
    assert sorted(named) == sorted(
        ["Shop Opened", "page /shop.html", "CTA Clicked", "identify /shop.html", "Element Clicked", "page /next.html"]
    ), [e.model_dump(include={"type", "event", "context"}) for e in events]
    opened, shop, cta = named["Shop Opened"], named["page /shop.html"], named["CTA Clicked"]
    identify, link, following = named["identify /shop.html"], named["Element Clicked"], named["page /next.html"]
    assert opened.properties == {"from": "stub"}
    assert shop.properties["url"] == f"{site.allowed_origin}/shop.html"
    assert shop.properties["title"] == "Shop" and shop.properties["path"] == "/shop.html"
    assert cta.properties == {
        "element_id": "buy",
        "element_text": "Buy now",
        "href": None,
        "page_url": f"{site.allowed_origin}/shop.html",
        "plan": "pro",
    }
    assert link.properties["href"] == f"{site.allowed_origin}/next.html"
    assert link.properties["element_text"] == "Next page"
    assert identify.userId == "u-browser-1"
    assert identify.traits == {"email": "b1@example.com", "plan": "pro"}
    assert [e.userId for e in (opened, shop, cta)] == [None, None, None]
    assert [e.userId for e in (identify, link, following)] == ["u-browser-1"] * 3
    assert following.context.page is not None
    assert following.context.page["referrer"] == f"{site.allowed_origin}/shop.html"
    for event in events:
        assert event.context.library == {"name": "ecrm.js", "version": "0.1.0"}
        assert event.context.userAgent and "HeadlessChrome" in event.context.userAgent
        assert event.context.locale and event.context.timezone
    assert len({e.messageId for e in events}) == len(events)

    # fetch (mode cors) while the page lives, a beacon (no-cors) on the way out; never a CORS preflight.
    batches = site.collector.batches_from(site.allowed_origin)[earlier:]
    assert {b.headers.get("sec-fetch-mode") for b in batches} == {"cors", "no-cors"}, batches
    assert all(b.status == 200 and b.headers["content-type"].startswith("text/plain") for b in batches)
    assert all("authorization" not in b.headers for b in batches)
    assert not [s for s in site.collector.seen if s.method == "OPTIONS"]
    assert not warnings, warnings


def test_a_page_from_an_origin_the_source_does_not_list_gets_nothing_onto_kafka(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    page = context.new_page()
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)

    # The tracker reads the 403 (the collector answers CORS errors with Allow-Origin: *) and says why.
    with page.expect_console_message(lambda msg: "HTTP 403" in msg.text, timeout=10_000):
        page.goto(f"{site.other_origin}/shop.html")
    anonymous_id = page.evaluate("analytics.user().anonymousId")
    page.click("#buy")
    page.click("a[data-ecrm-track]")
    page.wait_for_url("**/next.html")
    # Both pages' batches and the beacon are answered; after a 403 nothing is produced.
    wait_until(lambda: len(site.collector.batches_from(site.other_origin)) >= 3, what="three batches")
    context.close()

    assert {s.status for s in site.collector.batches_from(site.other_origin)} == {403}
    assert any("origin_not_allowed" in w for w in warnings), warnings
    records = read_topic(site.bootstrap, EVENTS.name, expect=1_000_000, timeout_s=1.0)
    assert not [v for _, v in records if anonymous_id.encode() in v]


def test_a_failed_send_is_retried_with_the_same_message_ids(chromium: Any, site: Site) -> None:
    context = chromium.new_context()
    page = context.new_page()
    sent: list[dict[str, Any]] = []

    # The first attempt never reaches the collector: the browser's network layer answers 503.
    def first_attempt_fails(route: Any) -> None:
        sent.append(json.loads(route.request.post_data))
        if len(sent) > 1:
            route.continue_()
            return
        error = {"error": {"code": "broker_unavailable", "message": "retry later", "errors": []}}
        route.fulfill(status=503, json=error, headers={"Access-Control-Allow-Origin": "*"})

    page.route("**/v1/batch", first_attempt_fails)
    page.goto(f"{site.allowed_origin}/shop.html")
    anonymous_id = page.evaluate("analytics.user().anonymousId")
    wait_until(lambda: len(sent) >= 2, what="the retry", pause=lambda s: page.wait_for_timeout(s * 1000))
    events = events_of(site.bootstrap, anonymous_id, count=2)
    context.close()

    first, retry = ([e["messageId"] for e in body["batch"]] for body in sent[:2])
    assert first == retry and len(first) == 2
    assert sorted(e.messageId for e in events) == sorted(first)
