"""ClickHouse writes failing, injected into the writer: the aggregator commits no offset, backs
off, recovers in the same process, and ends with the counts an oracle computes from the events.

The real broker and the real ClickHouse engine; the only thing added is a store whose inserts
raise (as the client does when the server refuses) while a switch is on, or every third call.
"""

import itertools
import random
import threading
import time
from collections import Counter
from decimal import Decimal

import orjson
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY

from ecrm_aggregator.admin import prepare_clickhouse
from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.clickhouse_store import ClickHouseStore
from ecrm_aggregator.consumer import BatchConsumer
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.topics import EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


class FlakyStore(ClickHouseStore):
    """Inserts fail while ``failing`` is set, or every third one with ``intermittent``."""

    def __init__(self, store: ClickHouseStore) -> None:
        super().__init__(store.client, store.database)
        self.failing = threading.Event()
        self.intermittent = False
        self.calls = 0
        self.failed_at: list[float] = []

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failing.is_set() or (self.intermittent and self.calls % 3 == 0):
            self.failed_at.append(time.monotonic())
            raise ConnectionError("injected: ClickHouse refused the insert")

    def insert_events(self, rows, dedup_token):  # type: ignore[no-untyped-def]
        self._maybe_fail()
        super().insert_events(rows, dedup_token)

    def insert_profiles(self, rows, dedup_token):  # type: ignore[no-untyped-def]
        self._maybe_fail()
        super().insert_profiles(rows, dedup_token)


def _events(first: int, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"type": "track", "event": "Order Completed", "messageId": f"f-{i}", "userId": f"cust-{rng.randrange(40)}",
         "properties": {"order_id": f"o{i}", "total": rng.randrange(1, 500) / 4},
         "timestamp": "2026-11-20T10:00:00Z", "receivedAt": "2026-11-20T10:00:00Z"}
        for i in range(first, first + count)
    ]  # fmt: skip


def _produce(bootstrap: str, events: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for event in events:
        producer.produce(EVENTS.name, key=event["userId"].encode(), value=orjson.dumps(event))
    assert producer.flush(30) == 0


def _committed(bootstrap: str, group: str) -> int:
    """The offsets the group has committed on the events topic, summed (-1001, none, counts 0)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(EVENTS.name, p) for p in range(EVENTS.partitions)])
    [future] = admin.list_consumer_group_offsets([request]).values()
    return sum(max(tp.offset, 0) for tp in future.result().topic_partitions)


def _retries() -> float:
    return REGISTRY.get_sample_value("ecrm_aggregator_write_retries_total") or 0.0


def test_failing_inserts_commit_nothing_back_off_and_recover_in_process(
    fresh_kafka_broker, clickhouse_server, clickhouse_database
) -> None:
    group = f"faults-{clickhouse_database}"
    settings = AggregatorSettings(
        kafka_bootstrap_servers=fresh_kafka_broker.bootstrap, kafka_session_timeout_ms=6000,
        clickhouse_url=clickhouse_server.url, clickhouse_database=clickhouse_database,
        aggregator_group_id=group, aggregator_batch_wait_s=0.2, aggregator_batch_size=500,
    )  # fmt: skip
    store, _ = prepare_clickhouse(settings)
    flaky = FlakyStore(store)
    consumer = BatchConsumer(settings, BatchWriter(flaky, None, settings.aggregator_max_invalid_ratio))
    first, second = _events(0, 2000, seed=1), _events(2000, 2000, seed=2)
    seen: dict[str, object] = {}

    def drive() -> None:
        try:
            client = clickhouse_server.client()
            count = f"SELECT count() FROM {clickhouse_database}.events"
            flaky.failing.set()
            retries_before = _retries()
            _produce(fresh_kafka_broker.bootstrap, first)
            time.sleep(8)  # the worker keeps retrying the first batch
            seen["stored_while_failing"] = client.query(count).result_rows[0][0]
            seen["committed_while_failing"] = _committed(fresh_kafka_broker.bootstrap, group)
            seen["retries_while_failing"] = _retries() - retries_before
            seen["failed_at"] = list(flaky.failed_at)
            flaky.failing.clear()
            flaky.intermittent = True  # the second wave meets a failure every third insert
            _produce(fresh_kafka_broker.bootstrap, second)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and _committed(fresh_kafka_broker.bootstrap, group) < 4000:
                time.sleep(0.5)
            seen["committed_at_end"] = _committed(fresh_kafka_broker.bootstrap, group)
        finally:
            consumer.stop()

    driver = threading.Thread(target=drive)
    driver.start()
    consumer.run()  # in the main thread: it installs signal handlers; the driver stops it
    driver.join()

    assert seen["stored_while_failing"] == 0 and seen["committed_while_failing"] == 0, seen
    gaps = [b - a for a, b in itertools.pairwise(seen["failed_at"])]  # type: ignore[call-overload]
    assert seen["retries_while_failing"] >= 4 and gaps[-1] > gaps[0] * 2, f"backing off: {gaps}"
    assert seen["committed_at_end"] == 4000, "the same process recovered and committed everything"

    oracle_orders: Counter[str] = Counter()
    oracle_revenue: dict[str, Decimal] = {}
    for event in first + second:
        oracle_orders[event["userId"]] += 1
        total = Decimal(str(event["properties"]["total"]))
        oracle_revenue[event["userId"]] = oracle_revenue.get(event["userId"], Decimal(0)) + total
    client = clickhouse_server.client()
    stored = client.query(
        f"SELECT count(), uniqExact(message_id) FROM {clickhouse_database}.events FINAL"
    ).result_rows[0]  # fmt: skip
    profiles = {
        customer: (orders, revenue, count)
        for customer, orders, revenue, count in client.query(
            f"SELECT customer_id, orders, revenue, event_count FROM {clickhouse_database}.profiles FINAL"
        ).result_rows
    }
    assert stored == (4000, 4000)
    assert {c: p[0] for c, p in profiles.items()} == dict(oracle_orders)
    assert {c: p[2] for c, p in profiles.items()} == dict(oracle_orders), "every event folded once"
    assert {c: Decimal(p[1]) for c, p in profiles.items()} == oracle_revenue
