"""The whole pipeline as `make run` starts it: HTTP in, ClickHouse rows, profile, email out.

Every component runs as its own process on free loopback ports: tansu, the chdb-backed
ClickHouse server, the SMTP sink, and the three services.
"""

import email
import time
from email import policy

import clickhouse_connect
import httpx
import pytest

from ecrm_embedded.net import free_port
from ecrm_embedded.stack import Stack, StackSettings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]
KEY = "e2e-write-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    settings = StackSettings(
        ecrm_data_dir=tmp_path_factory.mktemp("ecrm"),
        kafka_port=free_port(), clickhouse_port=free_port(), smtp_port=free_port(), collector_port=free_port(),
        interaction_port=free_port(), aggregator_metrics_port=free_port(), collector_write_keys=KEY,
    )  # fmt: skip
    running = Stack(settings)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def _eventually(probe, timeout_s: float = 60.0, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def test_identify_becomes_a_row_a_profile_and_a_welcome_email(stack: Stack) -> None:
    s = stack.settings
    collector = f"http://127.0.0.1:{s.collector_port}"
    response = httpx.post(
        f"{collector}/v1/identify",
        auth=(KEY, ""),
        json={"userId": "ada", "traits": {"email": "ada@example.com", "firstName": "Ada", "plan": "gold"}},
    )
    assert response.status_code == 200, response.text
    response = httpx.post(
        f"{collector}/v1/track",
        auth=(KEY, ""),
        json={"userId": "ada", "event": "Order Completed", "properties": {"order_id": "o-1", "total": 42.5}},
    )
    assert response.status_code == 200, response.text

    ch = clickhouse_connect.get_client(host="127.0.0.1", port=s.clickhouse_port)
    rows = _eventually(
        lambda: (
            ch.query("SELECT type, event FROM ecrm.events WHERE customer_id = 'ada' ORDER BY type").result_rows
            if _has_table(ch)
            else []
        )
    )
    assert rows == [("identify", ""), ("track", "Order Completed")]

    profile = _eventually(lambda: ch.query(
        "SELECT email, orders, revenue FROM ecrm.profiles FINAL WHERE customer_id = 'ada' AND orders = 1"
    ).result_rows)  # fmt: skip
    assert [(p[0], p[1], float(p[2])) for p in profile] == [("ada@example.com", 1, 42.5)]

    mail_dir = stack.data_dir / "mail"
    mails = _eventually(lambda: sorted(mail_dir.glob("*.eml")) if len(list(mail_dir.glob("*.eml"))) >= 2 else [])
    subjects = sorted(email.message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"] for p in mails)
    assert subjects == ["Thank you for your order o-1", "Welcome, Ada!"]

    token = s.interaction_api_token
    sends = httpx.get(f"http://127.0.0.1:{s.interaction_port}/v1/sends", params={"customer_id": "ada"},
                      headers={"Authorization": f"Bearer {token}"}).json()  # fmt: skip
    assert sorted(x["rule_id"] for x in sends if x["status"] == "sent") == [
        "thanks-for-order",
        "welcome-on-first-identify",
    ]

    # The interaction service reports its sends back as events: the profile counts them.
    sent = _eventually(
        lambda: (
            ch.query(
                "SELECT email_sent FROM ecrm.profiles FINAL WHERE customer_id = 'ada' AND email_sent = 2"
            ).result_rows
        )
    )
    assert sent == [(2,)]


def test_a_second_identify_sends_no_second_welcome(stack: Stack) -> None:
    s = stack.settings
    collector = f"http://127.0.0.1:{s.collector_port}"
    for _ in range(2):
        r = httpx.post(
            f"{collector}/v1/identify", auth=(KEY, ""), json={"userId": "bob", "traits": {"email": "bob@example.com"}}
        )
        assert r.status_code == 200
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=s.clickhouse_port)
    counted = _eventually(
        lambda: (
            ch.query(
                "SELECT event_count FROM ecrm.profiles FINAL WHERE customer_id = 'bob' AND event_count >= 2"
            ).result_rows
        )
    )
    assert counted

    def welcomes() -> list:
        return [p for p in (stack.data_dir / "mail").glob("*.eml") if b"bob@example.com" in p.read_bytes()]

    # The first is sent when the dispatcher gets to it (on a busy machine, after the profile shows).
    assert _eventually(welcomes), "the first identify sends a welcome"
    time.sleep(3)  # give the interaction service time to (wrongly) send a second welcome
    assert len(welcomes()) == 1


def test_invalid_event_is_a_json_400_naming_the_field(stack: Stack) -> None:
    s = stack.settings
    r = httpx.post(f"http://127.0.0.1:{s.collector_port}/v1/track", auth=(KEY, ""), json={"userId": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["errors"][0]["field"] == "event"


def _has_table(ch) -> bool:
    return bool(ch.query("EXISTS TABLE ecrm.events").result_rows[0][0])


def test_no_service_log_holds_an_address_a_key_or_a_secret(stack: Stack) -> None:
    """Run last in this module: by now every service has handled identifies with addresses,
    sent mail and refused an invalid event. Their logs must hold none of what is secret or personal."""
    s = stack.settings
    secrets = [KEY, s.interaction_api_token, "ecrm_dev_tracking_secret", "ada@example.com", "bob@example.com"]
    logs = {path.name: path.read_text(errors="replace") for path in (stack.data_dir / "logs").glob("*.log")}
    assert {"collector.log", "aggregator.log", "interaction.log"} <= set(logs)
    assert "email_sent" in logs["interaction.log"]  # the logs are the real ones, at INFO
    leaks = {(name, secret) for name, text in logs.items() for secret in secrets if secret in text}
    assert not leaks
