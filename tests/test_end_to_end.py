"""The whole pipeline as `make run` starts it: HTTP in, ClickHouse rows, profile, email out.

Every component runs as its own process on free loopback ports: tansu, the chdb-backed
ClickHouse server, the SMTP sink, and the three services.
"""

import email
import json
import os
import subprocess
import sys
import time
from email import policy

import clickhouse_connect
import httpx
import pytest

from ecrm_embedded.net import free_port
from ecrm_embedded.stack import Stack, StackSettings
from ecrm_schemas.email_tags import address_anonymous_id

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
            ch.query(
                "SELECT type, event FROM ecrm.events WHERE customer_id = 'ada' "
                "AND message_id NOT LIKE 'ecrm-interaction-%' ORDER BY type"  # not what the service reports
            ).result_rows
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

    # The loyalty ledger's balance comes back too: the profile's is the ledger's.
    points = _eventually(lambda: ch.query(
        "SELECT loyalty_points, loyalty_tier FROM ecrm.profiles FINAL WHERE customer_id = 'ada' AND loyalty_points = 42"
    ).result_rows)  # fmt: skip
    assert points == [(42, "bronze")]
    loyalty = httpx.get(f"http://127.0.0.1:{s.interaction_port}/v1/customers/ada/loyalty",
                        headers={"Authorization": f"Bearer {token}"}).json()  # fmt: skip
    assert loyalty["points"] == 42


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


def test_a_customer_is_exported_then_erased_everywhere_and_stays_erased(stack: Stack) -> None:
    """Erin browses anonymously, signs up, orders and gets consent recorded; Frank only signs up.
    Erin's export holds rows from ClickHouse and the relational store; after her erasure no
    table holds a row of her ids, later events for them are dropped at the collector, and
    Frank is untouched."""
    s = stack.settings
    collector = f"http://127.0.0.1:{s.collector_port}"
    api = httpx.Client(base_url=f"http://127.0.0.1:{s.interaction_port}", timeout=60,
                       headers={"Authorization": f"Bearer {s.interaction_api_token}"})  # fmt: skip
    events = [
        ("page", {"anonymousId": "anon-erin", "name": "Shoes", "properties": {"path": "/shoes"}}),
        ("identify", {"userId": "erin", "anonymousId": "anon-erin",
                      "traits": {"email": "erin@example.com", "firstName": "Erin"}}),
        ("track", {"userId": "erin", "event": "Order Completed", "properties": {"order_id": "o-e1", "total": 30}}),
        ("identify", {"userId": "frank", "traits": {"email": "frank@example.com"}}),
    ]  # fmt: skip
    for kind, body in events:
        assert httpx.post(f"{collector}/v1/{kind}", auth=(KEY, ""), json=body).status_code == 200
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=s.clickhouse_port)
    assert _eventually(lambda: ch.query(
        "SELECT 1 FROM ecrm.profiles FINAL WHERE customer_id = 'erin' AND orders = 1"
    ).result_rows)  # fmt: skip
    assert _eventually(lambda: api.get("/v1/customers/erin").status_code == 200)
    assert _eventually(lambda: api.get("/v1/customers/frank").status_code == 200)
    consent = api.put("/v1/customers/erin/consent/sms", json={"granted": True, "purpose": "marketing"})
    assert consent.status_code == 200, consent.text

    viewer = api.post("/v1/tokens", json={"name": "privacy-viewer", "role": "viewer"}).json()["token"]
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    assert api.get("/v1/customers/erin/export", headers=as_viewer).status_code == 403
    assert api.delete("/v1/customers/erin", headers=as_viewer).status_code == 403

    # Once her welcome is sent, the id of her address (what an ESP's untagged event names) is hers too.
    address_id = address_anonymous_id("erin@example.com")
    assert _eventually(lambda: address_id in api.get("/v1/customers/erin/export").json()["identities"])
    exported = api.get("/v1/customers/anon-erin/export")  # any of her ids finds the whole customer
    assert exported.status_code == 200, exported.text
    document = exported.json()
    assert document["customer_id"] == "erin"
    assert document["identities"][0] == "erin" and set(document["identities"]) == {"erin", "anon-erin", address_id}
    stored = document["clickhouse"]
    # (and, by now or soon, the events of the emails sent to her: the erasure must catch those too)
    assert {"identify", "page", "Order Completed"} <= {e["event"] or e["type"] for e in stored["events"]}
    assert {p["customer_id"] for p in stored["profiles"]} >= {"erin"}
    assert sorted(link["anonymous_id"] for link in stored["identity_links"]) == ["anon-erin", address_id]
    assert [c["customer_id"] for c in document["relational"]["customers"]] == ["erin"]
    assert [c["channel"] for c in document["relational"]["consents"]] == ["sms"]
    assert "frank" not in exported.text

    erased = api.delete("/v1/customers/erin")
    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["identities"] == 3
    assert report["clickhouse_rows"]["events"] >= 3
    assert report["relational_rows"]["customers"] == 1 and report["relational_rows"]["consents"] == 1
    assert set(report["remaining"].values()) == {0}, report["remaining"]

    def rows_of_erin() -> dict[str, int]:
        ids = f"('erin', 'anon-erin', '{address_id}')"
        return {
            table: ch.query(
                f"SELECT count() FROM ecrm.{table} WHERE {' OR '.join(f'{c} IN {ids}' for c in columns)}"
            ).result_rows[0][0]
            for table, columns in {
                "events": ("customer_id", "user_id", "anonymous_id"),
                "profiles": ("customer_id", "user_id", "anonymous_id", "merged_into"),
                "identity_links": ("anonymous_id", "user_id"),
                "identity_merges": ("anonymous_id", "user_id"),
                "segment_membership": ("customer_id",),
                "segment_changes": ("customer_id",),
            }.items()
        }

    assert set(rows_of_erin().values()) == {0}
    assert api.get("/v1/customers/erin").status_code == 404
    assert api.get("/v1/customers/erin/export").status_code == 404

    later = [
        {"userId": "erin", "event": "Product Viewed", "properties": {"product_id": "p1"}},
        {"anonymousId": "anon-erin", "event": "Product Viewed", "properties": {"product_id": "p2"}},
        {"userId": "frank", "event": "Order Completed", "properties": {"order_id": "o-f1", "total": 10}},
    ]
    for body in later:
        assert httpx.post(f"{collector}/v1/track", auth=(KEY, ""), json=body).status_code == 200
    assert _eventually(lambda: ch.query(
        "SELECT 1 FROM ecrm.profiles FINAL WHERE customer_id = 'frank' AND orders = 1"
    ).result_rows), "frank's later event is stored: the pipeline is flowing"  # fmt: skip
    assert set(rows_of_erin().values()) == {0}
    suppressed = httpx.get(f"{collector}/metrics").text
    assert "ecrm_collector_events_suppressed_total 2.0" in suppressed
    audit = api.get("/v1/audit").json()
    assert any(a["action"] == "erase" and a["entity"] == "customer" for a in audit)
    assert "erin" not in str(audit)


def test_the_privacy_cli_exports_and_erases_what_the_api_does(stack: Stack) -> None:
    """``ecrm-interaction privacy export|erase`` against the running stack, for Grace."""
    s = stack.settings
    body = {"userId": "grace", "traits": {"email": "grace@example.com"}}
    assert httpx.post(f"http://127.0.0.1:{s.collector_port}/v1/identify", auth=(KEY, ""), json=body).status_code == 200
    ch = clickhouse_connect.get_client(host="127.0.0.1", port=s.clickhouse_port)
    assert _eventually(lambda: ch.query("SELECT 1 FROM ecrm.profiles FINAL WHERE customer_id = 'grace'").result_rows)
    env = {**os.environ, **stack.service_env(), "LOG_LEVEL": "WARNING"}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ecrm_interaction", "privacy", *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    exported = cli("export", "grace")
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert document["customer_id"] == "grace"
    assert {p["email"] for p in document["clickhouse"]["profiles"]} == {"grace@example.com"}  # every stored version
    refused = cli("erase", "grace", stdin="n\n")
    assert refused.returncode != 0 and ch.query("SELECT count() FROM ecrm.events WHERE customer_id = 'grace'"
                                                ).result_rows[0][0] >= 1  # fmt: skip
    erased = cli("erase", "grace", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert set(json.loads(erased.stdout)["remaining"].values()) == {0}
    assert ch.query("SELECT count() FROM ecrm.events WHERE customer_id = 'grace'").result_rows[0][0] == 0
    gone = cli("export", "grace")
    assert gone.returncode == 1 and "no data stored" in gone.stderr


def _has_table(ch) -> bool:
    return bool(ch.query("EXISTS TABLE ecrm.events").result_rows[0][0])


def test_no_service_log_holds_an_address_a_key_or_a_secret(stack: Stack) -> None:
    """Run last in this module: by now every service has handled identifies with addresses,
    sent mail and refused an invalid event. Their logs must hold none of what is secret or personal."""
    s = stack.settings
    secrets = [KEY, s.interaction_api_token, "ecrm_dev_tracking_secret", "ada@example.com", "bob@example.com",
               "erin@example.com", "grace@example.com"]  # fmt: skip
    logs = {path.name: path.read_text(errors="replace") for path in (stack.data_dir / "logs").glob("*.log")}
    assert {"collector.log", "aggregator.log", "interaction.log"} <= set(logs)
    assert "email_sent" in logs["interaction.log"]  # the logs are the real ones, at INFO
    leaks = {(name, secret) for name, text in logs.items() for secret in secrets if secret in text}
    assert not leaks
