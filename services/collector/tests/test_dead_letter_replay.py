"""The events' dead-letter topic: listed without payloads, shown one at a time, replayed after a
fix once and only once, never for server-only events sent by a browser key."""

import time
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from ecrm_collector.__main__ import cli
from ecrm_collector.app import create_app
from ecrm_collector.dead_letter_topic import replay
from ecrm_collector.dead_letters import plan_replay
from ecrm_collector.ingest import plan_ingest
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_embedded.testing import read_topic
from ecrm_schemas.catalog import CATALOG, ProductViewed
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import decode_event, encode_event
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ
from ecrm_schemas.validation import FieldError, validate_event

AT = "2026-11-20T10:00:00Z"


def _letter(payload: dict, rule: str, source: str = "collector:shop", sender_kind: str | None = "server") -> DeadLetter:
    error = FieldError("properties.total", rule, "refused by an earlier version")
    return DeadLetter.build(topic=EVENTS.name, source=source, reason="invalid_event", errors=[error],
                            payload=orjson.dumps(payload), sender_kind=sender_kind)  # type: ignore[arg-type]  # fmt: skip


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

    # r2 is still invalid: it stays pending, so what follows it on its partition is read again,
    # and r4 is sent again with its message id (the aggregator folds it once).
    again, covered = replay(config, 32_768, apply=True, discard_invalid=True)
    assert covered == 3 and [decode_event(r.value).messageId for r in again.records] == ["r4"]
    done, covered = replay(config, 32_768, apply=True)
    assert covered == 0 and done.records == []  # handled (r2 given up): running it again sends nothing
    producer.produce(EVENTS_DLQ.name, value=_letter(_track("r5", 0), "x").model_dump_json().encode())
    producer.flush(10)
    later, covered = replay(config, 32_768, apply=True)
    assert covered == 1 and [decode_event(r.value).messageId for r in later.records] == ["r5"]
    time.sleep(0.5)
    stored = read_topic(fresh_kafka_broker.bootstrap, EVENTS.name, expect=5, timeout_s=3)
    assert sorted(decode_event(value).messageId for _, value in stored) == ["r1", "r4", "r4", "r5"]


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _refused_by_the_route(raw: dict, event_type: str = "track", **kwargs) -> DeadLetter:
    """What the collector's single-event route dead-letters for ``raw`` (no type, no messageId)."""
    plan = plan_ingest([raw], received_at=NOW, source="collector:shop", max_event_bytes=32_768,
                       event_type=event_type, **kwargs)  # fmt: skip
    [rejection] = plan.rejected
    return DeadLetter.model_validate_json(rejection.dead_letter.value)


def _relax_product_viewed(monkeypatch) -> None:
    """The fix being replayed: ``Product Viewed`` no longer needs a product_id."""

    class Relaxed(ProductViewed):
        product_id: str | None = None  # type: ignore[assignment]

    monkeypatch.setitem(CATALOG, "Product Viewed", CATALOG["Product Viewed"].model_copy(update={"properties": Relaxed}))


def test_a_single_route_entry_is_replayed_with_its_type_and_the_same_message_id_every_run(monkeypatch) -> None:
    letter = _refused_by_the_route({"userId": "ada", "event": "Product Viewed", "properties": {}})
    assert (letter.event_type, letter.errors[0].field) == ("track", "properties.product_id")
    _relax_product_viewed(monkeypatch)
    first, second = plan_replay([letter], 32_768), plan_replay([letter], 32_768)
    assert first.still_invalid == [] and len(first.records) == 1, first.still_invalid
    event = decode_event(first.records[0].value)
    assert event.type == "track" and event.messageId == letter.message_id
    assert decode_event(second.records[0].value).messageId == event.messageId


def test_an_old_entry_without_a_recorded_message_id_gets_the_same_one_on_every_run(monkeypatch) -> None:
    _relax_product_viewed(monkeypatch)
    old = _letter({"type": "track", "userId": "ada", "event": "Product Viewed"}, "missing", sender_kind=None)
    ids = {decode_event(plan_replay([old], 32_768).records[0].value).messageId for _ in range(3)}
    assert len(ids) == 1


def test_a_browser_keys_contact_state_event_is_never_replayed_whatever_it_failed_for() -> None:
    unsubscribe = {"userId": "victim", "event": "Unsubscribed", "properties": {}}
    refused_for_name = _refused_by_the_route(unsubscribe, sender_kind="browser")
    assert [e.rule for e in refused_for_name.errors] == ["contact_state"]
    # Written before the sender's kind was recorded, and refused for something else: a browser's, maybe.
    legacy = _letter({"type": "track", **unsubscribe}, "string_too_long", source="collector:shop-web", sender_kind=None)
    # A server key's entry and a verified webhook's are replayed.
    server = _letter({"type": "track", **unsubscribe, "messageId": "s1"}, "x")
    webhook = _letter({"type": "track", **unsubscribe, "messageId": "w1"}, "x", "collector:email-webhook:ses", None)
    plan = plan_replay([refused_for_name, legacy, server, webhook], 32_768)
    assert plan.refused == [refused_for_name, legacy]
    assert sorted(decode_event(r.value).messageId for r in plan.records) == ["s1", "w1"]


@pytest.mark.kafka
async def test_replay_apply_leaves_still_invalid_entries_pending(fresh_kafka_broker, tmp_path, monkeypatch) -> None:
    """Real collector, real broker: a single-route event dead-lettered, a first replay that
    cannot fix it (still pending), then the fix and a replay that sends it, with its id."""
    bootstrap = fresh_kafka_broker.bootstrap
    config = {"bootstrap.servers": bootstrap}
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    settings = CollectorSettings(kafka_bootstrap_servers=bootstrap, collector_write_keys="k",
                                 collector_sources_file=tmp_path / "sources.json")  # fmt: skip
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        view = {"userId": "ada", "event": "Product Viewed", "properties": {"sku": "s"}}
        refused = await http.post("/v1/track", headers={"Authorization": "Bearer k"}, json=view)
    producer.close()
    assert refused.status_code == 400
    [(_, value)] = read_topic(bootstrap, EVENTS_DLQ.name, expect=1)
    letter = DeadLetter.model_validate_json(value)

    result = CliRunner().invoke(cli, ["dlq", "replay", "--apply"])
    assert result.exit_code == 0, result.output
    assert "still invalid 1 (pending)" in result.stdout
    pending, covered = replay(config, 32_768, apply=False)
    assert covered == 1 and len(pending.still_invalid) == 1, "a still-invalid entry is not marked as handled"

    _relax_product_viewed(monkeypatch)
    fixed, covered = replay(config, 32_768, apply=True)
    assert covered == 1 and len(fixed.records) == 1
    [(_, stored)] = read_topic(bootstrap, EVENTS.name, expect=1)
    event = decode_event(stored)
    assert (event.type, event.messageId, event.properties) == ("track", letter.message_id, {"sku": "s"})
    assert replay(config, 32_768, apply=True)[1] == 0, "replayed: handled"


@pytest.mark.kafka
def test_discard_invalid_gives_up_on_still_invalid_entries(fresh_kafka_broker, monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", fresh_kafka_broker.bootstrap)
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap})
    producer.produce(EVENTS_DLQ.name, value=_letter(_track("d1", -5, "Order Completed"), "x").model_dump_json())
    producer.flush(10)
    assert CliRunner().invoke(cli, ["dlq", "replay", "--discard-invalid"]).exit_code != 0, "needs --apply"
    result = CliRunner().invoke(cli, ["dlq", "replay", "--apply", "--discard-invalid"])
    assert "still invalid 1 (discarded)" in result.stdout, result.output
    assert replay({"bootstrap.servers": fresh_kafka_broker.bootstrap}, 32_768, apply=False)[1] == 0
