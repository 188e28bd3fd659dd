from ecrm_collector.email_tracking import click_event, is_machine_open, open_event
from ecrm_schemas.tracking import TrackingToken
from ecrm_schemas.validation import validate_event

TOKEN = TrackingToken(email_id="s-1", customer="a-9", customer_kind="anonymousId", rule_id="r", issued_at=1000.0,
                      url="https://shop.example.com/p/1")  # fmt: skip
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"


def test_machine_opens_are_flagged() -> None:
    assert not is_machine_open(TOKEN, BROWSER, now=1060.0, prefetch_window_s=2)
    assert is_machine_open(TOKEN, BROWSER, now=1000.5, prefetch_window_s=2)  # prefetched at send time
    assert is_machine_open(TOKEN, None, now=1060.0, prefetch_window_s=2)
    assert is_machine_open(TOKEN, "Mimecast Security Scanner", now=1060.0, prefetch_window_s=2)  # a link scanner


GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
OUTLOOK = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 OneOutlook/1.0"


def test_proxies_that_fetch_when_a_person_opens_count_as_human_opens() -> None:
    for proxy in (GMAIL, YAHOO, OUTLOOK):
        assert not is_machine_open(TOKEN, proxy, now=1060.0, prefetch_window_s=2, ip="66.249.84.1"), proxy


def test_apple_mail_privacy_protection_prefetches_are_machine_opens() -> None:
    # MPP fetches every image at delivery, from Apple's network, with a bare "Mozilla/5.0".
    assert is_machine_open(TOKEN, "Mozilla/5.0", now=1060.0, prefetch_window_s=2, ip="17.58.0.1")
    assert is_machine_open(TOKEN, "Mozilla/5.0", now=1060.0, prefetch_window_s=2)
    assert is_machine_open(TOKEN, BROWSER, now=1060.0, prefetch_window_s=2, ip="17.253.1.2")
    assert not is_machine_open(TOKEN, BROWSER, now=1060.0, prefetch_window_s=2, ip="203.0.113.9")
    assert not is_machine_open(TOKEN, BROWSER, now=1060.0, prefetch_window_s=2, ip="not-an-ip")


def test_open_and_click_events_are_valid_catalogue_events() -> None:
    opened = open_event(TOKEN, machine_open=False, user_agent=BROWSER)
    clicked = click_event(TOKEN, BROWSER)
    stamp = {"messageId": "m", "timestamp": "2026-11-20T10:00:00Z", "receivedAt": "2026-11-20T10:00:00Z"}
    assert validate_event(opened | stamp).anonymousId == "a-9"
    assert validate_event(clicked | stamp).properties["link_url"] == "https://shop.example.com/p/1"
    assert opened["properties"] == {"email_id": "s-1", "rule_id": "r", "machine_open": False}
