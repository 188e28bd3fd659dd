"""The aggregator's speed next to its ceiling, on the same data and the same machine.

For each measurement a fresh tansu broker and a fresh chdb-backed ClickHouse HTTP server
(the embedded default) are started, the events topic is filled with the same workload
(page views, product views, orders, email events, identifies; a few events per customer),
and then one of:

* ``raw``: a bare confluent-kafka consumer → clickhouse-connect insert loop into a copy of
  the events table, 2000 rows per insert (no validation, no profiles): the ceiling;
* ``aggregator-1`` / ``aggregator-2``: one or two ``ecrm-aggregator serve`` processes in
  one consumer group, timed from the first event row written to the last profile folded.

Events/s is events over that time. The report goes to ``bench/results/aggregator-*.json``
and ``.md``.

    uv run --frozen python -m bench.aggregator_bench [--events N]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import free_port
from ecrm_embedded.testing import ClickHouseServer
from ecrm_schemas.kafka_admin import ensure_topics
from ecrm_schemas.topics import EVENTS

RESULTS = Path(__file__).resolve().parent / "results"
DATABASE = "bench"


def workload(events: int, customers: int) -> list[tuple[bytes, bytes]]:
    """(key, value) records: each customer browses, some buy, mail goes out, some identify."""
    now = datetime.now(UTC).isoformat()
    records = []
    for i in range(events):
        customer = f"c{i % customers}"
        kind = i % 10
        body: dict[str, Any] = {"messageId": f"b-{i}", "userId": customer, "timestamp": now, "receivedAt": now}
        if kind < 4:
            body |= {"type": "page", "properties": {"path": f"/p/{i % 50}"}}
        elif kind < 7:
            body |= {"type": "track", "event": "Product Viewed", "properties": {"product_id": f"p{i % 200}"}}
        elif kind == 7:
            body |= {"type": "track", "event": "Order Completed", "properties": {"order_id": f"o{i}", "total": 25}}
        elif kind == 8:
            body |= {"type": "track", "event": "Email Opened", "properties": {"email_id": "e1"}}
        else:
            body |= {"type": "identify", "anonymousId": f"a{i % customers}", "traits": {"plan": "pro"}}
        records.append((customer.encode(), orjson.dumps(body)))
    return records


@contextmanager
def infrastructure(workdir: Path):  # type: ignore[no-untyped-def]
    broker = TansuBroker(port=free_port(), log_path=workdir / "kafka.log").start()
    clickhouse = ClickHouseServer(workdir / "ch", workdir / "ch.log").start()
    try:
        ensure_topics({"bootstrap.servers": broker.bootstrap})
        yield broker, clickhouse
    finally:
        clickhouse.stop()
        broker.stop()


def fill(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for key, value in records:
        while True:
            try:
                producer.produce(EVENTS.name, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def measure_raw(bootstrap: str, clickhouse: ClickHouseServer, total: int) -> dict[str, float]:
    client = clickhouse.client()
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client.command(
        f"CREATE TABLE {DATABASE}.raw_events (message_id String, customer_id String, type LowCardinality(String), "
        "event LowCardinality(String), timestamp DateTime64(3, 'UTC'), properties String) "
        "ENGINE = MergeTree ORDER BY (customer_id, timestamp)"
    )
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw", "enable.auto.commit": False})
    consumer.assign([TopicPartition(EVENTS.name, p, OFFSET_BEGINNING) for p in range(EVENTS.partitions)])
    started, done = time.perf_counter(), 0
    while done < total:
        messages = consumer.consume(2000, 1.0)
        rows = []
        for message in messages:
            if message.error():
                continue
            body = orjson.loads(message.value())
            rows.append([body["messageId"], body.get("userId") or body.get("anonymousId"), body["type"],
                         body.get("event", ""), datetime.fromisoformat(body["timestamp"]),
                         orjson.dumps(body.get("properties", {})).decode()])  # fmt: skip
        if rows:
            columns = ["message_id", "customer_id", "type", "event", "timestamp", "properties"]
            client.insert(f"{DATABASE}.raw_events", rows, column_names=columns)
            done += len(rows)
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"events": done, "seconds": round(elapsed, 2), "events_per_s": round(done / elapsed)}


def measure_aggregator(
    bootstrap: str, clickhouse: ClickHouseServer, total: int, workers: int, workdir: Path
) -> dict[str, float]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_SESSION_TIMEOUT_MS": "6000",
           "CLICKHOUSE_URL": clickhouse.url, "CLICKHOUSE_DATABASE": DATABASE, "LOG_LEVEL": "WARNING",
           "AGGREGATOR_GROUP_ID": f"bench-{workers}"}  # fmt: skip
    client = clickhouse.client()
    processes = []
    for n in range(workers):
        log = open(workdir / f"aggregator-{workers}-{n}.log", "wb")  # noqa: SIM115
        processes.append(subprocess.Popen([sys.executable, "-m", "ecrm_aggregator", "serve"],
                                          env=env | {"AGGREGATOR_METRICS_PORT": str(free_port())},
                                          stdout=log, stderr=subprocess.STDOUT))  # fmt: skip

    def counts() -> tuple[int, int]:
        try:
            row = client.query(
                f"SELECT (SELECT count() FROM {DATABASE}.events), "
                f"(SELECT sum(event_count) FROM {DATABASE}.profiles FINAL)"
            ).result_rows[0]
            return int(row[0]), int(row[1] or 0)
        except Exception:
            return 0, 0

    try:
        deadline = time.monotonic() + 900
        while counts()[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        first = time.perf_counter()
        while counts()[1] < total and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.perf_counter() - first
        written, folded = counts()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)
    return {"events": folded, "rows": written, "seconds": round(elapsed, 2), "events_per_s": round(folded / elapsed)}


def main(events: Annotated[int, typer.Option(help="Events in the workload.")] = 100_000) -> None:
    records = workload(events, customers=max(1, events // 20))
    report: dict[str, Any] = {"events": events, "customers": max(1, events // 20), "at": datetime.now(UTC).isoformat(),
                              "cpus": os.cpu_count(), "runs": {}}  # fmt: skip
    for name in ("raw", "aggregator-1", "aggregator-2"):
        with tempfile.TemporaryDirectory() as tmp, infrastructure(Path(tmp)) as (broker, clickhouse):
            fill(broker.bootstrap, records)
            if name == "raw":
                result = measure_raw(broker.bootstrap, clickhouse, events)
            else:
                result = measure_aggregator(broker.bootstrap, clickhouse, events, int(name[-1]), Path(tmp))
        report["runs"][name] = result
        typer.echo(
            f"{name:14} {result['events_per_s']:>8} events/s  ({result['events']} events, {result['seconds']} s)"
        )
    raw = report["runs"]["raw"]["events_per_s"]
    for name in ("aggregator-1", "aggregator-2"):
        report["runs"][name]["of_raw"] = round(report["runs"][name]["events_per_s"] / raw, 3)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"aggregator-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| run | events/s | of raw | events | seconds |", "|---|---|---|---|---|"]
    for name, run in report["runs"].items():
        lines.append(
            f"| {name} | {run['events_per_s']} | {run.get('of_raw', 1.0)} | {run['events']} | {run['seconds']} |"
        )
    (RESULTS / f"aggregator-{stamp}.md").write_text("\n".join(lines) + "\n")
    typer.echo("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
