from ecrm_collector.email_tracking import click_event, is_machine_open, open_event
from ecrm_schemas.tracking import TrackingToken
from ecrm_schemas.validation import validate_event

TOKEN = TrackingToken(email_id="s-1", customer="a-9", customer_kind="anonymousId", rule_id="r", issued_at=1000.0,
                      url="https://shop.example.com/p/1")  # fmt: skip
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"


def test_machine_opens_are_flagged() -> None:
    assert not is_machine_open(TOKEN, BROWSER, now=1060.0, prefetch_window_s=2)
    assert is_machine_open(TOKEN, BROWSER, now=1000.5, prefetch_window_s=2)  # prefetched at send time
    assert is_machine_open(TOKEN, "Mozilla/5.0 (via ggpht.com GoogleImageProxy)", now=1060.0, prefetch_window_s=2)
    assert is_machine_open(TOKEN, None, now=1060.0, prefetch_window_s=2)


def test_open_and_click_events_are_valid_catalogue_events() -> None:
    opened = open_event(TOKEN, machine_open=False, user_agent=BROWSER)
    clicked = click_event(TOKEN, BROWSER)
    stamp = {"messageId": "m", "timestamp": "2026-11-20T10:00:00Z", "receivedAt": "2026-11-20T10:00:00Z"}
    assert validate_event(opened | stamp).anonymousId == "a-9"
    assert validate_event(clicked | stamp).properties["link_url"] == "https://shop.example.com/p/1"
    assert opened["properties"] == {"email_id": "s-1", "rule_id": "r", "machine_open": False}
