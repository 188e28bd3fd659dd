"""The aggregator process against the real broker and ClickHouse engine."""

import os
import signal
import subprocess
import sys
import time

import httpx
import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from confluent_kafka import Producer

from ecrm_aggregator.clickhouse_store import connect
from ecrm_aggregator.consumer import EXIT_TOO_MANY_INVALID
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_embedded.net import free_port
from ecrm_embedded.testing import ClickHouseServer, read_topic
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.profile import ProfileChanged
from ecrm_schemas.segments import SegmentMembershipChanged
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ, EVENTS_STITCHED, PROFILE_CHANGES, SEGMENT_MEMBERSHIP

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def _event(i: int, customer: str) -> dict:
    return {"type": "track", "event": "Order Completed", "messageId": f"w-{i}", "userId": customer,
            "properties": {"order_id": f"o{i}", "total": 10}, "timestamp": "2026-11-20T10:00:00Z",
            "receivedAt": "2026-11-20T10:00:00Z"}  # fmt: skip


def _worker_env(kafka_broker, clickhouse_server, clickhouse_database) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "CLICKHOUSE_URL": clickhouse_server.url,
        "CLICKHOUSE_DATABASE": clickhouse_database,
        "AGGREGATOR_METRICS_PORT": str(free_port()),
        "AGGREGATOR_GROUP_ID": f"agg-{clickhouse_database}",
        "AGGREGATOR_BATCH_WAIT_S": "0.2",
    }


ENGINES = pytest.mark.parametrize("engine", ["kafka", "faust"])
"""The tests every engine (settings.aggregator_engine) must pass."""


@ENGINES
def test_worker_writes_events_profiles_changes_and_dead_letters(
    fresh_kafka_broker, clickhouse_server, clickhouse_database, tmp_path, engine
):
    kafka_broker = fresh_kafka_broker  # the topics are read from the start: nothing of another test's
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for i in range(30):
        customer = f"c{i % 3}"
        producer.produce(EVENTS.name, key=customer.encode(), value=orjson.dumps(_event(i, customer)))
    producer.produce(EVENTS.name, key=b"c0", value=b"{broken")
    producer.flush(10)

    env = _worker_env(kafka_broker, clickhouse_server, clickhouse_database) | {"AGGREGATOR_ENGINE": engine}
    log = open(tmp_path / "aggregator.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "ecrm_aggregator", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
        deadline = time.monotonic() + 90
        orders = {}
        while time.monotonic() < deadline and sum(orders.values()) < 30:
            time.sleep(0.5)
            assert worker.poll() is None, (tmp_path / "aggregator.log").read_text()[-3000:]
            try:
                rows = client.query(f"SELECT customer_id, orders FROM {clickhouse_database}.profiles FINAL").result_rows
            except Exception:
                continue
            orders = dict(rows)
        assert orders == {"c0": 10, "c1": 10, "c2": 10}, (tmp_path / "aggregator.log").read_text()[-3000:]
        count = client.query(f"SELECT count() FROM {clickhouse_database}.events").result_rows[0][0]
        assert count == 30

        changes = [
            ProfileChanged.model_validate_json(v)
            for _, v in read_topic(kafka_broker.bootstrap, PROFILE_CHANGES.name, expect=30, timeout_s=5)
        ]
        assert {c.customer_id for c in changes} == {"c0", "c1", "c2"}
        assert sum(len(c.triggers) for c in changes) == 30
        [(_, letter)] = read_topic(kafka_broker.bootstrap, EVENTS_DLQ.name, expect=1)
        assert DeadLetter.model_validate_json(letter).reason == "undecodable"
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def test_worker_stops_instead_of_draining_a_broken_topic_into_the_dlq(
    fresh_kafka_broker, clickhouse_server, clickhouse_database, tmp_path
):
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap})
    for _ in range(300):
        producer.produce(EVENTS.name, key=b"x", value=b'{"type": "track", "userId": "x"}')  # no event name
    producer.flush(10)
    dead_before = len(read_topic(fresh_kafka_broker.bootstrap, EVENTS_DLQ.name, expect=10_000, timeout_s=2))

    env = _worker_env(fresh_kafka_broker, clickhouse_server, clickhouse_database) | {"AGGREGATOR_BATCH_WAIT_S": "2"}
    with open(tmp_path / "aggregator.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "ecrm_aggregator", "serve"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        try:
            code = worker.wait(90)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert code == EXIT_TOO_MANY_INVALID, (tmp_path / "aggregator.log").read_text()[-3000:]
    dead_after = len(read_topic(fresh_kafka_broker.bootstrap, EVENTS_DLQ.name, expect=10_000, timeout_s=2))
    assert dead_after == dead_before


def test_a_batch_stopped_mid_outage_is_not_committed_and_comes_again(kafka_broker, clickhouse_database, tmp_path):
    """ClickHouse goes away; the worker retries, is stopped (SIGTERM), and loses nothing."""
    clickhouse = ClickHouseServer(tmp_path / "ch", tmp_path / "ch.log").start()
    try:
        _outage_then_restart(kafka_broker, clickhouse, clickhouse_database, tmp_path)
    finally:
        clickhouse.stop()


def _outage_then_restart(kafka_broker, clickhouse, clickhouse_database, tmp_path) -> None:
    env = _worker_env(kafka_broker, clickhouse, clickhouse_database) | {"AGGREGATOR_GROUP_ID": "outage-test"}

    def start_worker(name: str) -> subprocess.Popen[bytes]:
        env["CLICKHOUSE_URL"] = clickhouse.url
        with open(tmp_path / f"{name}.log", "wb") as log:
            return subprocess.Popen([sys.executable, "-m", "ecrm_aggregator", "serve"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)  # fmt: skip

    def produce(first: int, count: int) -> None:
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        for i in range(first, first + count):
            producer.produce(EVENTS.name, key=b"z", value=orjson.dumps(_event(1000 + i, "z")))
        producer.flush(10)

    def orders() -> int:
        try:
            rows = clickhouse.client().query(
                f"SELECT orders FROM {clickhouse_database}.profiles FINAL WHERE customer_id = 'z'"
            )
        except DatabaseError:  # not migrated yet
            return 0
        return rows.result_rows[0][0] if rows.result_rows else 0

    worker = start_worker("first")
    try:
        produce(0, 5)
        deadline = time.monotonic() + 60
        while orders() < 5 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert orders() == 5, (tmp_path / "first.log").read_text()[-3000:]

        clickhouse.stop()
        produce(5, 5)
        time.sleep(3)  # the worker is now retrying the batch against a dead ClickHouse
        worker.terminate()
        assert worker.wait(30) is not None
    finally:
        if worker.poll() is None:
            worker.kill()

    clickhouse.start()  # same data directory, new port
    worker = start_worker("second")
    try:
        deadline = time.monotonic() + 60
        while orders() < 10 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert orders() == 10, (tmp_path / "second.log").read_text()[-3000:]
        count = clickhouse.client().query(
            f"SELECT count(), uniqExact(message_id) FROM {clickhouse_database}.events WHERE customer_id = 'z'"
        )
        assert count.result_rows == [(10, 10)]
    finally:
        worker.terminate()
        worker.wait(30)


def _start(env: dict[str, str], log_path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "ecrm_aggregator", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip


@pytest.mark.parametrize("engine", ["kafka", pytest.param("faust", marks=pytest.mark.reliability)])
def test_sigkill_mid_stream_never_loses_or_duplicates_an_event(
    fresh_kafka_broker, clickhouse_server, clickhouse_database, tmp_path, engine
):
    sent = 12_000
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap, "linger.ms": 20})
    for i in range(sent):
        customer = f"k{i % 40}"
        producer.produce(EVENTS.name, key=customer.encode(), value=orjson.dumps(_event(i, customer)))
    producer.flush(30)
    env = _worker_env(fresh_kafka_broker, clickhouse_server, clickhouse_database) | {
        "AGGREGATOR_BATCH_SIZE": "300", "AGGREGATOR_BATCH_WAIT_S": "0.1", "AGGREGATOR_ENGINE": engine}  # fmt: skip
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    log_path = tmp_path / "aggregator.log"

    def written() -> int:
        try:
            return client.query(f"SELECT count() FROM {clickhouse_database}.events").result_rows[0][0]
        except DatabaseError:  # not migrated yet
            return 0

    kills = 0
    while kills < 3:
        worker = _start(env, log_path)
        before, deadline = written(), time.monotonic() + 60
        while written() < before + 1500 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)  # mid-stream: batches in flight, offsets not committed
        worker.wait(10)
        kills += 1
        assert written() < sent, "the stream ended before the kill; send more events"

    worker = _start(env, log_path)
    try:
        deadline = time.monotonic() + 120
        while written() < sent and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(2)  # anything redelivered after the last count would show up now
        counts = client.query(f"SELECT count(), uniqExact(message_id) FROM {clickhouse_database}.events").result_rows
        assert counts == [(sent, sent)], log_path.read_text()[-3000:]
        orders = client.query(f"SELECT sum(orders) FROM {clickhouse_database}.profiles FINAL").result_rows
        assert orders == [(sent,)]
    finally:
        worker.terminate()
        worker.wait(30)


def test_segment_definitions_reach_a_running_worker_and_membership_is_emitted(
    kafka_broker, clickhouse_server, clickhouse_database, tmp_path
):
    env = _worker_env(kafka_broker, clickhouse_server, clickhouse_database) | {"AGGREGATOR_GROUP_ID": "seg-test"}
    worker = _start(env, tmp_path / "aggregator.log")
    try:
        definition = tmp_path / "big-spenders.json"
        definition.write_text(orjson.dumps({
            "id": "big-spenders", "name": "Big spenders",
            "condition": {"kind": "trait", "trait": "revenue", "op": "gte", "value": 110},
        }).decode())  # fmt: skip
        put = subprocess.run(["ecrm", "segments", "put", str(definition)], env=env, capture_output=True, text=True)
        assert put.returncode == 0, put.stderr
        assert "revenue ≥ 110" in put.stdout
        time.sleep(2)  # the follower picks the definition up
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        for i in range(12):  # 12 orders of 10
            producer.produce(EVENTS.name, key=b"spender", value=orjson.dumps(_event(5000 + i, "spender")))
        producer.flush(10)
        records = read_topic(kafka_broker.bootstrap, SEGMENT_MEMBERSHIP.name, expect=1, timeout_s=60)
        changes = [SegmentMembershipChanged.model_validate_json(v) for _, v in records]
        assert [(c.type, c.customer_id, c.segment_id) for c in changes] == [
            ("segment.entered", "spender", "big-spenders")
        ], (tmp_path / "aggregator.log").read_text()[-3000:]
        members = subprocess.run(["ecrm", "segments", "members", "big-spenders"], env=env, capture_output=True,
                                 text=True)  # fmt: skip
        assert members.stdout.startswith("spender\t"), members.stderr
    finally:
        worker.terminate()
        worker.wait(30)


def test_two_workers_fold_every_stitched_customers_events_once(
    fresh_kafka_broker, clickhouse_server, clickhouse_database, tmp_path
):
    """Users identified on one partition keep browsing anonymously, keyed by anonymous ids that
    land on other partitions: whichever worker reads them, the user's own worker folds them."""
    bootstrap = fresh_kafka_broker.bootstrap
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    users = 60

    def send(key: str, body: dict) -> None:
        producer.produce(EVENTS.name, key=key.encode(), value=orjson.dumps(body))

    stamp = {"timestamp": "2026-11-20T10:00:00Z", "receivedAt": "2026-11-20T10:00:00Z"}
    for u in range(users):
        send(f"user{u}", {"type": "identify", "messageId": f"id-{u}", "userId": f"user{u}", "anonymousId": f"anon{u}",
                          "traits": {"plan": "pro"}, **stamp})  # fmt: skip
    producer.flush(10)
    env = _worker_env(fresh_kafka_broker, clickhouse_server, clickhouse_database)
    workers = [_start(env | {"AGGREGATOR_METRICS_PORT": str(free_port())}, tmp_path / f"w{n}.log") for n in range(2)]
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))

    def scalar(sql: str) -> int:
        try:
            return client.query(sql.replace("{db}", clickhouse_database)).result_rows[0][0]
        except DatabaseError:  # not migrated yet
            return 0

    try:
        deadline = time.monotonic() + 90
        while scalar("SELECT count() FROM {db}.identity_links FINAL") < users and time.monotonic() < deadline:
            time.sleep(0.3)
        assert scalar("SELECT count() FROM {db}.identity_links FINAL") == users
        per_user = 5
        for i in range(per_user):
            for u in range(users):
                send(f"anon{u}", {"type": "page", "messageId": f"a-{u}-{i}", "anonymousId": f"anon{u}", **stamp})
                send(f"user{u}", {"type": "page", "messageId": f"u-{u}-{i}", "userId": f"user{u}", **stamp})
        producer.flush(10)
        expected = users * (1 + 2 * per_user)
        folded = "SELECT sum(event_count) FROM {db}.profiles FINAL WHERE merged_into = '' AND user_id != ''"
        deadline = time.monotonic() + 90
        while scalar(folded) < expected and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(2)  # anything folded twice would show now
        assert scalar(folded) == expected, (tmp_path / "w0.log").read_text()[-2000:]
        assert scalar("SELECT min(event_count) FROM {db}.profiles FINAL WHERE user_id != ''") == 1 + 2 * per_user
        assert scalar("SELECT count() FROM {db}.profiles FINAL WHERE user_id = ''") == 0  # no anonymous profile
        assert scalar("SELECT count() FROM {db}.events") == expected
        assert scalar("SELECT uniqExact(message_id) FROM {db}.events") == expected
        forwarded = read_topic(bootstrap, EVENTS_STITCHED.name, expect=users * per_user, timeout_s=10)
        assert len(forwarded) >= users * per_user * 0.8  # most anonymous ids hash to another partition
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)


def test_a_bad_definition_published_straight_to_the_topic_is_dead_lettered_and_profiles_keep_updating(
    fresh_kafka_broker, clickhouse_server, clickhouse_database, tmp_path
):
    """Issue 16 #21: a typo (``orderz``) used to stop every batch (exit 75), and the compacted
    topic replays it at every start. Now it is reported and the worker goes on folding."""
    from ecrm_schemas.topics import SEGMENT_DEFINITIONS, SEGMENT_DEFINITIONS_DLQ

    kafka_broker = fresh_kafka_broker  # the bad definition would stay on a shared broker's compacted topic
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    typo = {"id": "typo", "name": "Typo", "condition": {"kind": "trait", "trait": "orderz", "op": "gte", "value": 3}}
    good = {"id": "big-spenders", "name": "Big spenders",
            "condition": {"kind": "trait", "trait": "revenue", "op": "gte", "value": 110}}  # fmt: skip
    for definition in (typo, good):
        producer.produce(SEGMENT_DEFINITIONS.name, key=definition["id"].encode(), value=orjson.dumps(definition))
    producer.flush(10)
    env = _worker_env(kafka_broker, clickhouse_server, clickhouse_database)
    log_path = tmp_path / "aggregator.log"
    worker = _start(env, log_path)
    try:
        time.sleep(2)  # the follower reads the topic
        for i in range(12):  # 12 orders of 10
            producer.produce(EVENTS.name, key=b"spender", value=orjson.dumps(_event(7000 + i, "spender")))
        producer.flush(10)
        records = read_topic(kafka_broker.bootstrap, SEGMENT_MEMBERSHIP.name, expect=1, timeout_s=60)
        changes = [SegmentMembershipChanged.model_validate_json(v) for _, v in records]
        assert [(c.type, c.segment_id) for c in changes] == [("segment.entered", "big-spenders")], log_path.read_text()[
            -3000:
        ]
        client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
        orders = client.query(
            f"SELECT orders FROM {clickhouse_database}.profiles FINAL WHERE customer_id = 'spender'"
        ).result_rows
        assert orders == [(12,)]
        assert worker.poll() is None, log_path.read_text()[-3000:]

        [(key, value)] = read_topic(kafka_broker.bootstrap, SEGMENT_DEFINITIONS_DLQ.name, expect=1, timeout_s=30)
        letter = DeadLetter.model_validate_json(value)
        assert (key, letter.reason, letter.topic) == (b"typo", "invalid_definition", SEGMENT_DEFINITIONS.name)
        assert [(e.field, e.rule) for e in letter.errors] == [("condition.trait.trait", "unknown_profile_field")]
        assert orjson.loads(letter.raw_payload()) == typo
        metrics = httpx.get(f"http://127.0.0.1:{env['AGGREGATOR_METRICS_PORT']}/metrics").text
        assert 'ecrm_aggregator_segment_definitions_rejected_total{rule="unknown_profile_field"} 1.0' in metrics
        lines = [
            orjson.loads(line) for line in log_path.read_text().splitlines() if "segment_definition_rejected" in line
        ]
        assert lines and lines[0]["segment"] == "typo" and lines[0]["errors"][0]["rule"] == "unknown_profile_field"

        listed = subprocess.run(["ecrm", "segments", "list"], env=env, capture_output=True, text=True)
        assert listed.stdout == "big-spenders\tBig spenders\trevenue ≥ 110\n", listed.stderr
        shown = subprocess.run(["ecrm", "segments", "show", "big-spenders"], env=env, capture_output=True, text=True)
        assert orjson.loads(shown.stdout)["condition"]["trait"] == "revenue", shown.stderr
    finally:
        worker.terminate()
        worker.wait(30)


@pytest.mark.parametrize(
    ("condition", "field", "rule"),
    [
        ({"kind": "trait", "trait": "orderz", "op": "gte", "value": 3},
         "condition.trait.trait", "unknown_profile_field"),
        ({"kind": "all", "conditions": [{"kind": "trait", "trait": "orders", "op": "gte", "value": "many"}]},
         "condition.all.conditions.0.trait", "number_required"),
    ],
)  # fmt: skip
def test_the_cli_refuses_a_definition_the_aggregator_could_not_evaluate(tmp_path, condition, field, rule) -> None:
    """``ecrm segments put`` validates as the API does, before anything is published (no broker here)."""
    path = tmp_path / "segment.json"
    path.write_text(orjson.dumps({"id": "vip", "name": "VIP", "condition": condition}).decode())
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    put = subprocess.run(["ecrm", "segments", "put", str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert put.returncode == 2, put.stderr
    assert f"{field}: " in put.stderr and f"[{rule}]" in put.stderr
