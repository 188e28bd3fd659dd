"""The events' dead-letter topic: listed without payloads, shown one at a time, replayed after a
fix once and only once, never for server-only events sent by a browser key."""

import time

import orjson
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from ecrm_collector.__main__ import cli
from ecrm_collector.dead_letter_topic import replay
from ecrm_collector.dead_letters import plan_replay
from ecrm_embedded.testing import read_topic
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import decode_event, encode_event
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ
from ecrm_schemas.validation import FieldError, validate_event

AT = "2026-11-20T10:00:00Z"


def _letter(payload: dict, rule: str, source: str = "collector:shop") -> DeadLetter:
    error = FieldError("properties.total", rule, "refused by an earlier version")
    return DeadLetter.build(topic=EVENTS.name, source=source, reason="invalid_event", errors=[error],
                            payload=orjson.dumps(payload))  # fmt: skip


def _track(message_id: str, total: float, event: str = "Product Viewed") -> dict:
    props = {"product_id": "p1"} if event == "Product Viewed" else {"order_id": "o1", "total": total}
    return {"type": "track", "event": event, "messageId": message_id, "userId": "ada", "timestamp": AT,
            "properties": props, "context": {"traits": {"email": "ada@example.com"}}}  # fmt: skip


def _entries() -> list[DeadLetter]:
    stamped = validate_event(_track("r4", 0) | {"receivedAt": AT})
    return [
        _letter(_track("r1", 0), "greater_than_equal"),  # valid under today's rules: replayed
        _letter(_track("r2", -5, "Order Completed"), "greater_than_equal"),  # still invalid
        _letter(_track("r3", 5, "Order Completed"), "server_only"),  # a browser key's order: never
        DeadLetter.build(
            topic=EVENTS.name,
            source="aggregator",
            reason="invalid_event",
            errors=[FieldError("type", "x", "y")],
            payload=encode_event(stamped),
        ),
    ]


def test_the_plan_replays_what_passes_now_and_never_a_browsers_server_event() -> None:
    entries = _entries()
    plan = plan_replay(entries, max_event_bytes=32_768)
    replayed = [decode_event(r.value).messageId for r in plan.records]
    assert replayed == ["r1", "r4"]
    assert [errors for _, errors in plan.still_invalid] == [["properties.total: greater_than_equal"]]
    assert [orjson.loads(letter.payload)["messageId"] for letter in plan.refused] == ["r3"]
    # Stamped as received when it first was, not now.
    assert abs((decode_event(plan.records[0].value).receivedAt - entries[0].failed_at).total_seconds()) < 0.01


def test_entries_of_an_erased_customer_are_never_replayed() -> None:
    suppressions = SuppressionList()
    suppressions.suppress(["ada"])  # every entry is ada's
    plan = plan_replay(_entries(), max_event_bytes=32_768, suppressions=suppressions)
    assert (plan.records, plan.still_invalid, plan.suppressed) == ([], [], 3)
    assert len(plan.refused) == 1, "a server-only refusal is counted as such, before anything else"


@pytest.mark.kafka
def test_replay_is_idempotent_and_listing_shows_no_payload(fresh_kafka_broker, monkeypatch) -> None:
    config = {"bootstrap.servers": fresh_kafka_broker.bootstrap}
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", fresh_kafka_broker.bootstrap)
    producer = Producer(config)
    for letter in _entries():
        producer.produce(EVENTS_DLQ.name, key=b"ada", value=letter.model_dump_json().encode())
    producer.flush(10)

    listing = CliRunner().invoke(cli, ["dlq", "list"])
    assert listing.exit_code == 0, listing.output
    lines = [line for line in listing.stdout.splitlines() if "\t" in line]
    assert len(lines) == 4 and "ada@example.com" not in listing.output and "r1" not in listing.output
    shown = CliRunner().invoke(cli, ["dlq", "show", lines[0].split("\t")[0]])
    assert shown.exit_code == 0 and "ada@example.com" in shown.stdout

    dry, covered = replay(config, 32_768, apply=False)
    assert covered == 4 and len(dry.records) == 2
    assert read_topic(fresh_kafka_broker.bootstrap, EVENTS.name, expect=1, timeout_s=2) == []  # a dry run sends nothing

    plan, covered = replay(config, 32_768, apply=True)
    assert covered == 4 and len(plan.records) == 2
    events = read_topic(fresh_kafka_broker.bootstrap, EVENTS.name, expect=2)
    assert sorted(decode_event(value).messageId for _, value in events) == ["r1", "r4"]

    again, covered = replay(config, 32_768, apply=True)
    assert covered == 0 and again.records == []  # replayed once: running it again sends nothing
    producer.produce(EVENTS_DLQ.name, value=_letter(_track("r5", 0), "x").model_dump_json().encode())
    producer.flush(10)
    later, covered = replay(config, 32_768, apply=True)
    assert covered == 1 and [decode_event(r.value).messageId for r in later.records] == ["r5"]
    time.sleep(0.5)
    assert len(read_topic(fresh_kafka_broker.bootstrap, EVENTS.name, expect=4, timeout_s=3)) == 3
