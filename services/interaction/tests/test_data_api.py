"""The Data API routes with real components: dead letters read from and replayed through Kafka
(tansu) by the real collector's admin route, catalog counts and pipeline health from ClickHouse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_collector.app import create_app as create_collector
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ
from ecrm_schemas.validation import FieldError

ADMIN = {"Authorization": "Bearer data-admin-token"}
COLLECTOR_TOKEN = "collector-admin-token"


@pytest.fixture
def kafka_app(tmp_path, kafka_broker):
    settings = InteractionSettings(
        database_url=f"sqlite:///{tmp_path}/i.db",
        interaction_api_token="data-admin-token",
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        collector_admin_token=COLLECTOR_TOKEN,
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    producer = ReliableProducer(settings.kafka_client_config())
    store = Store(engine)
    yield create_app(settings, store, worker=None, dispatcher=Dispatcher(settings, store, producer)), producer
    engine.dispose()


def _letter(source: str, payload: dict, *, valid_now: bool) -> DeadLetter:
    rule = "custom_rule_of_the_past" if valid_now else "required_one_of"
    return DeadLetter.build(
        topic=EVENTS.name,
        source=source,
        reason="invalid_event",
        errors=[FieldError("userId", rule, "userId or anonymousId is required")],
        payload=orjson.dumps(payload),
        sender_kind="server",
        event_type="track",
        message_id=str(uuid.uuid4()),
    )


def _end_of(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def _message_ids_after(bootstrap: str, topic: str, starts: dict[int, int], expect: int) -> set[str]:
    import time

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    found: set[str] = set()
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        deadline = time.monotonic() + 20
        while len(found) < expect and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                found.add(orjson.loads(message.value())["messageId"])
        return found
    finally:
        consumer.close()


async def test_dead_letters_are_listed_by_reason_redacted_and_replayed_through_the_collector(
    kafka_app, kafka_broker
) -> None:
    app, producer = kafka_app
    source = f"collector:test-{uuid.uuid4().hex[:6]}"
    fixed = _letter(source, {"userId": "ann@example.com", "event": "Thing Done", "properties": {}}, valid_now=True)
    broken = _letter(source, {"event": "Thing Done", "traits": {"email": "bob@example.com"}}, valid_now=False)
    for letter in (fixed, broken):
        producer.produce(EVENTS_DLQ.name, letter.model_dump_json().encode(), key=b"k")
    producer.flush_or_raise(10)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        listed = await api.get("/v1/dead-letters", headers=ADMIN, params={"reason": "invalid_event", "limit": 500})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        mine = [e for e in body["entries"] if e["source"] == source]
        assert len(mine) == 2 and body["held"][EVENTS_DLQ.name] >= 2
        assert {"topic": EVENTS_DLQ.name, "reason": "invalid_event"} in [
            {"topic": c["topic"], "reason": c["reason"]} for c in body["by_reason"]
        ]
        assert all(e["meant_for"] == EVENTS.name and e["errors"][0]["field"] == "userId" for e in mine)
        assert "ann@example.com" not in listed.text and "bob@example.com" not in listed.text
        assert '"event":"Thing Done"' in mine[0]["preview"]

        # Replaying is the collector's: without its admin API configured, the API says so.
        positions = [{"topic": e["topic"], "partition": e["partition"], "offset": e["offset"]} for e in mine]
        unconfigured = await api.post("/v1/dead-letters/replay", headers=ADMIN, json={"entries": positions})
        assert (unconfigured.status_code, unconfigured.json()["error"]["code"]) == (
            503,
            "collector_admin_not_configured",
        )

        collector_settings = CollectorSettings(
            kafka_bootstrap_servers=kafka_broker.bootstrap, collector_admin_token=COLLECTOR_TOKEN
        )
        collector_producer = AsyncProducer({**collector_settings.kafka_client_config(), "linger.ms": 1})
        collector = create_collector(collector_settings, collector_producer)
        app.state.collector_admin = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=collector), base_url="http://collector"
        )
        try:
            wrong = await app.state.collector_admin.post(
                "/admin/dead-letters/replay", json={"entries": [{"partition": 0, "offset": 0}]},
                headers={"Authorization": "Bearer nope"},
            )  # fmt: skip
            assert wrong.status_code == 401
            starts = _end_of(kafka_broker.bootstrap, EVENTS.name, EVENTS.partitions)
            replayed = await api.post("/v1/dead-letters/replay", headers=ADMIN, json={"entries": positions})
            assert replayed.status_code == 200, replayed.text
            result = replayed.json()
            assert (result["replayed"], result["refused"], result["not_found"]) == (1, 0, 0)
            assert [s["errors"] for s in result["still_invalid"]] == [["userId: required_one_of"]]
            # The replayed event is the one first received: the message id the collector gave it.
            assert fixed.message_id in _message_ids_after(kafka_broker.bootstrap, EVENTS.name, starts, expect=1)
        finally:
            await app.state.collector_admin.aclose()
            collector_producer.close()

        log = (await api.get("/v1/audit", headers=ADMIN, params={"entity": "dead_letters"})).json()
        assert log[0]["action"] == "dead_letters.replay" and log[0]["detail"]["replayed"] == 1
        assert len(log[0]["detail"]["entries"]) == 2

        nothing = await api.post("/v1/dead-letters/replay", headers=ADMIN, json={"entries": []})
        assert nothing.status_code == 422 and nothing.json()["error"]["errors"][0]["field"] == "entries"


@pytest.fixture
def warehouse_app(tmp_path, clickhouse_server):
    database = f"data_{uuid.uuid4().hex[:8]}"
    client = clickhouse_server.client()
    migrate_clickhouse(client, database)
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="data-admin-token")
    engine = make_engine(settings.database_url)
    migrate(engine)
    yield (
        create_app(
            settings, Store(engine), worker=None, warehouse=Warehouse(clickhouse_server.service_client(), database)
        ),
        client,
        database,
    )
    engine.dispose()


def _event(kind: str, name: str, received: datetime) -> list:
    return [str(uuid.uuid4()), "c1", "u1", "", kind, name, received, received, "{}", "{}", "{}", 0, 0]


COLUMNS = ["message_id", "customer_id", "user_id", "anonymous_id", "type", "event", "timestamp", "received_at",
           "properties", "traits", "context", "source_partition", "source_offset"]  # fmt: skip


async def test_catalog_counts_the_last_7_days_and_pipeline_reads_clickhouse(warehouse_app) -> None:
    app, client, database = warehouse_app
    now = datetime.now(UTC)
    rows = [_event("track", "Order Completed", now - timedelta(minutes=1)) for _ in range(3)]
    rows += [_event("track", "Order Completed", now - timedelta(days=9))]  # older than 7 days: not counted
    rows += [_event("track", "Wishlist Shared", now - timedelta(hours=2)), _event("identify", "", now)]
    client.insert(f"{database}.events", rows, column_names=COLUMNS)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
        catalog = (await api.get("/v1/catalog", headers=ADMIN)).json()
        counts = {e["name"]: e["last_7_days"] for e in catalog["events"]}
        assert catalog["counted"] and counts["Order Completed"] == 3 and counts["Product Viewed"] == 0
        others = {(o["type"], o["event"]): o["last_7_days"] for o in catalog["others"]}
        assert others == {("track", "Wishlist Shared"): 1, ("identify", ""): 1}

        pipeline = (await api.get("/v1/pipeline", headers=ADMIN)).json()
        ch = pipeline["clickhouse"]
        assert ch["configured"] and not ch["error"]
        assert abs(datetime.fromisoformat(ch["last_received_at"]) - now) < timedelta(seconds=2)
        assert sum(n for _minute, n in ch["per_minute"]) == 4  # the last hour: 3 orders and the identify
        assert ch["per_second"] == round(4 / 300, 2)
        assert pipeline["outbox_waiting"] == 0 and pipeline["lag"] is None
        assert [s["name"] for s in pipeline["services"]] == ["interaction"]
        assert all(f["value"] is not None for f in pipeline["services"][0]["figures"]), "its own registry is read"
