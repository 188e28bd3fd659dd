"""Scale-out on the real broker: two aggregator workers and two interaction services share
their topics' partitions, and when one of each is killed the other takes its partitions
over, losing and duplicating nothing."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from ecrm_aggregator.clickhouse_store import connect
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_embedded.net import free_port
from ecrm_schemas.profile import CustomerProfile, ProfileChanged, TriggerEvent
from ecrm_schemas.topics import EVENTS, PROFILE_CHANGES

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.kafka,
    pytest.mark.clickhouse,
    pytest.mark.smtp,
    pytest.mark.postgres,
]
"""In the long suite (about a minute together): `make test` keeps to its time budget."""


def _spawn(module: str, env: dict[str, str], log_path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", module, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)


def _metric(port: int, name: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    prefixes = (name,) if "{" in name else (name + " ", name + "{")
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefixes))


def test_two_aggregator_workers_share_partitions_and_survive_losing_one(
    fresh_kafka_broker, clickhouse_server, clickhouse_database, tmp_path
) -> None:
    sent = 20_000
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap, "linger.ms": 20})
    for i in range(sent):
        customer = f"s{i % 500}"
        body = {
            "type": "track",
            "event": "Order Completed",
            "messageId": f"so-{i}",
            "userId": customer,
            "properties": {"order_id": f"o{i}", "total": 1},
            "timestamp": "2026-11-20T10:00:00Z",
            "receivedAt": "2026-11-20T10:00:00Z",
        }
        producer.produce(EVENTS.name, key=customer.encode(), value=orjson.dumps(body))
    producer.flush(30)
    ports = [free_port(), free_port()]
    base = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": fresh_kafka_broker.bootstrap,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "CLICKHOUSE_URL": clickhouse_server.url,
        "CLICKHOUSE_DATABASE": clickhouse_database,
        "AGGREGATOR_GROUP_ID": f"scale-{clickhouse_database}",
        "AGGREGATOR_BATCH_SIZE": "500",
        "AGGREGATOR_BATCH_WAIT_S": "0.1",
    }
    workers = [
        _spawn("ecrm_aggregator", base | {"AGGREGATOR_METRICS_PORT": str(p)}, tmp_path / f"a{n}.log")
        for n, p in enumerate(ports)
    ]
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))

    def scalar(sql: str) -> int:
        try:
            return int(client.query(sql.replace("{db}", clickhouse_database)).result_rows[0][0] or 0)
        except Exception:
            return 0

    try:
        deadline = time.monotonic() + 90
        while (
            min(_metric(p, "ecrm_aggregator_events_consumed_total") for p in ports) == 0 and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        shares = [_metric(p, "ecrm_aggregator_events_consumed_total") for p in ports]
        assert all(shares), f"both workers consume (partitions shared): {shares}"
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        assert scalar("SELECT count() FROM {db}.events") < sent, "the stream ended before the kill"
        deadline = time.monotonic() + 120
        while scalar("SELECT count() FROM {db}.events") < sent and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(2)
        assert scalar("SELECT count() FROM {db}.events") == sent, (tmp_path / "a1.log").read_text()[-2000:]
        assert scalar("SELECT uniqExact(message_id) FROM {db}.events") == sent
        assert scalar("SELECT sum(orders) FROM {db}.profiles FINAL") == sent
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(30)


def test_two_interaction_services_share_profile_changes_and_survive_losing_one(
    fresh_kafka_broker, smtp_sink, postgres_url, tmp_path
) -> None:
    """Why one replica used to get every partition (the test was flaky): a member hears of a
    rebalance only in the answer to its next heartbeat, and tansu forms the new generation
    with the members that rejoined within about half the session timeout (3 s here). The
    interaction consumer used librdkafka's default heartbeat (every 3 s), so a member whose
    heartbeat fell late was left out: the other replica got all partitions, the late one then
    started another rebalance, and so on, while each replica's gauge could still show the
    partitions of the generation before. The old worker also rebuilt its consumer on any
    error (a commit refused during a rebalance included): leaving and rejoining the group
    cost two more rebalances, each handing everything to the other replica. Every consumer is
    now built by ``consumer_config`` (heartbeat every tenth of the session timeout, the range
    assignor for both co-partitioned topics) and the runtime never rebuilds its consumer.
    And both replicas load the rules file into the one PostgreSQL as they start: one could lose
    the insert race (``UniqueViolation`` on ``email_templates``) and die, leaving every
    partition to the other; the load is now tried again (``_load_at_start``)."""
    customers = 300
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap, "linger.ms": 5})
    at = datetime.now(UTC).isoformat()  # identifies of now: within the rules' max_event_age

    def offer() -> None:
        """A steady stream (10 s), so both services are in the group while changes still come."""
        for c in range(customers):
            profile = CustomerProfile(
                customer_id=f"c{c}", user_id=f"c{c}", email=f"c{c}@example.com", first_seen=at, last_seen=at
            )
            change = ProfileChanged(
                customer_id=f"c{c}",
                profile=profile,
                changed=["email"],
                emitted_at=at,
                triggers=[TriggerEvent(message_id=f"i{c}", type="identify", timestamp=at)],
            )
            producer.produce(PROFILE_CHANGES.name, key=f"c{c}".encode(), value=change.encode())
            producer.poll(0)
            time.sleep(10 / customers)
        producer.flush(10)

    (tmp_path / "rules.yaml").write_text(
        "templates: [{id: w, subject: 'Welcome {{ profile.customer_id }}', text: Hi}]\n"
        "rules: [{id: w, name: W, once_per_customer: true, trigger: {kind: event, event: identify},"
        " actions: [{kind: email, template: w}]}]\n"
    )
    ports = [free_port(), free_port()]
    base = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": fresh_kafka_broker.bootstrap,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "DATABASE_URL": postgres_url,
        "SMTP_URL": smtp_sink.url,
        "INTERACTION_RULES_FILE": str(tmp_path / "rules.yaml"),
        "INTERACTION_QUIET_HOURS": "off",
        "INTERACTION_FREQUENCY_CAPS": "off",
        "INTERACTION_BATCH_SIZE": "20",
        "SMTP_TIMEOUT_S": "3",
        "INTERACTION_WEBHOOK_TIMEOUT_S": "3",
        "INTERACTION_DISPATCH_INTERVAL_S": "0.1",
    }
    services = [
        _spawn("ecrm_interaction", base | {"INTERACTION_PORT": str(p)}, tmp_path / f"i{n}.log")
        for n, p in enumerate(ports)
    ]
    sender = threading.Thread(target=offer, daemon=True)
    try:
        deadline = time.monotonic() + 120
        held = 'ecrm_interaction_assigned_partitions{topic="ecrm.profile-changes"}'
        while min(_metric(p, held) for p in ports) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert min(_metric(p, held) for p in ports) > 0, "both services hold profile-change partitions"
        time.sleep(2)  # lets a generation still forming settle before the stream starts
        sender.start()
        deadline = time.monotonic() + 90
        while (
            min(_metric(p, "ecrm_interaction_profile_changes_total") for p in ports) == 0
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        shares = [_metric(p, "ecrm_interaction_profile_changes_total") for p in ports]
        assert all(shares), f"both services consume (partitions shared): {shares}"
        services[0].send_signal(signal.SIGKILL)
        services[0].wait(10)
        sender.join(60)
        deadline = time.monotonic() + 120
        while len({_to(m) for m in smtp_sink.messages()}) < customers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
    finally:
        for service in services:
            if service.poll() is None:
                service.terminate()
                service.wait(30)
    counts = Counter(_to(m) for m in smtp_sink.messages())
    assert set(counts) == {f"c{c}@example.com" for c in range(customers)}, (tmp_path / "i1.log").read_text()[-2000:]
    # Only a message accepted by the server in the instant before the kill can go twice.
    assert sum(n - 1 for n in counts.values()) <= 8, {a: n for a, n in counts.items() if n > 1}


def _to(path) -> str:
    for line in path.read_bytes().split(b"\r\n"):
        if line.startswith(b"To: "):
            return line[4:].decode()
    return ""
