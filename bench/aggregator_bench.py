"""The aggregator's speed next to its ceiling, on the same data and the same machine.

For each measurement a fresh tansu broker and a fresh chdb-backed ClickHouse HTTP server
(the embedded default) are started, the events topic is filled with the same workload
(page views, product views, orders, email events, identifies; a few events per customer),
and then one of:

* ``raw``: a bare confluent-kafka consumer → clickhouse-connect insert loop into the same
  (migrated) events table, as many rows per insert as the aggregator's batch size: JSON
  decoded, the row built from the dict, no validation, no profiles. The ceiling;
* ``kafka-1`` / ``kafka-2``: one or two ``ecrm-aggregator serve`` processes with the default
  engine in one consumer group;
* ``faust-1``: one process with ``AGGREGATOR_ENGINE=faust`` (the framework's cost, visible).

An aggregator run is timed from the end of its first batch to the end of its last one, as
the workers' ``ecrm_aggregator_events_consumed_total`` reports them (scraped every 0.1 s, so
watching costs the measured machine almost nothing); events/s counts the events processed
in between. Afterwards every event must be in ClickHouse once and folded once, or the run
fails. The report goes to ``bench/results/aggregator-*.json`` and ``.md``.

    uv run --frozen python -m bench.aggregator_bench [--events N] [--runs raw,kafka-1,...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.rows import EVENT_COLUMNS
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import free_port
from ecrm_embedded.testing import ClickHouseServer
from ecrm_schemas.kafka_admin import ensure_topics
from ecrm_schemas.topics import EVENTS, PROFILE_CHANGES

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


def event_row(value: bytes, partition: int, offset: int) -> list[Any]:
    """The ``events`` row of one record as the raw loop builds it: JSON decoded, no validation."""
    body = orjson.loads(value)
    key = body.get("userId") or body.get("anonymousId")
    return [body["messageId"], key, body.get("userId", ""), body.get("anonymousId", ""), body["type"],
            body.get("event", ""), datetime.fromisoformat(body["timestamp"]), None,
            datetime.fromisoformat(body["receivedAt"]), orjson.dumps(body.get("properties", {})).decode(),
            orjson.dumps(body.get("traits", {})).decode(), "{}", partition, offset,
            body.get("name", ""), body.get("category", "")]  # fmt: skip


def measure_raw(bootstrap: str, clickhouse: ClickHouseServer, total: int, batch_size: int) -> dict[str, float]:
    client = clickhouse.client()
    migrate(client, DATABASE)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw", "enable.auto.commit": False})
    consumer.assign([TopicPartition(EVENTS.name, p, OFFSET_BEGINNING) for p in range(EVENTS.partitions)])
    started, done, first_batch = time.perf_counter(), 0, 0
    while done < total:
        messages = consumer.consume(batch_size, 1.0)
        rows = []
        for message in messages:
            if message.error():
                continue
            rows.append(event_row(message.value() or b"", message.partition() or 0, message.offset() or 0))
        if rows:
            client.insert(f"{DATABASE}.events", rows, column_names=list(EVENT_COLUMNS))
            done += len(rows)
            if not first_batch:  # timed as the aggregator is: from the end of the first batch to the last
                first_batch, started = done, time.perf_counter()
    elapsed = time.perf_counter() - started
    consumer.close()
    measured = done - first_batch
    return {"events": measured, "seconds": round(elapsed, 2), "events_per_s": round(measured / elapsed)}


def measure_aggregator(
    bootstrap: str,
    clickhouse: ClickHouseServer,
    total: int,
    engine: str,
    workers: int,
    workdir: Path,
    check_folded: bool = True,
) -> dict[str, float]:
    """``check_folded``: every event must be counted in a profile once (true of this module's
    workload; with aliases and merges, as in the suite's, profiles' counts move between ids)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_SESSION_TIMEOUT_MS": "6000",
           "CLICKHOUSE_URL": clickhouse.url, "CLICKHOUSE_DATABASE": DATABASE, "LOG_LEVEL": "WARNING",
           "AGGREGATOR_GROUP_ID": f"bench-{engine}-{workers}", "AGGREGATOR_ENGINE": engine}  # fmt: skip
    client = clickhouse.client()
    processes, metrics_urls = [], []
    for n in range(workers):
        log = open(workdir / f"aggregator-{engine}-{workers}-{n}.log", "wb")  # noqa: SIM115
        port = free_port()
        metrics_urls.append(f"http://127.0.0.1:{port}/metrics")
        processes.append(subprocess.Popen([sys.executable, "-m", "ecrm_aggregator", "serve"],
                                          env=env | {"AGGREGATOR_METRICS_PORT": str(port)},
                                          stdout=log, stderr=subprocess.STDOUT))  # fmt: skip

    def consumed() -> int:
        """Records the workers have processed (the batch written, its output produced): their
        metrics, scraped cheaply so that watching costs the measured machine almost nothing."""
        done = 0
        for url in metrics_urls:
            try:
                text = httpx.get(url, timeout=2).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith("ecrm_aggregator_events_consumed_total "):
                    done += int(float(line.split()[1]))
        return done

    try:
        deadline = time.monotonic() + 900
        while (first_count := consumed()) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        first = time.perf_counter()
        while (count := consumed()) < total and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.perf_counter() - first
        written = client.query(f"SELECT count() FROM {DATABASE}.events").result_rows[0][0]
        folded = client.query(f"SELECT sum(event_count) FROM {DATABASE}.profiles FINAL").result_rows[0][0]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)
    if written != total or (check_folded and folded != total):
        raise RuntimeError(f"{engine}-{workers}: {written} rows and {folded} events folded, {total} sent")
    # Timed from the end of the first batch to the end of the last: the first batch's events are left out.
    measured = count - first_count
    return {"events": measured, "rows": written, "seconds": round(elapsed, 2),
            "events_per_s": round(measured / elapsed)}  # fmt: skip


def measure_latency(
    bootstrap: str, clickhouse: ClickHouseServer, rate: int, seconds: int, customers: int, workdir: Path
) -> dict[str, float]:
    """Event → profile visible at a fixed offered rate, for one worker of the default engine.

    A thread produces ``rate`` events/s for ``seconds`` on a schedule fixed in advance (open
    loop: the sending never waits for the pipeline), each stamped ``receivedAt`` = when it was
    sent, as the collector stamps them; how far the sender fell behind its schedule is reported
    too. A change is emitted after its profiles are in ClickHouse, so the broker's timestamp of
    the first change naming an event among its triggers bounds when its customer's profile
    became visible (the probe reading them late does not count). The first fifth of the run
    is warm-up, left out.
    """
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_SESSION_TIMEOUT_MS": "6000",
           "CLICKHOUSE_URL": clickhouse.url, "CLICKHOUSE_DATABASE": DATABASE, "LOG_LEVEL": "WARNING",
           "AGGREGATOR_GROUP_ID": "bench-latency", "AGGREGATOR_METRICS_PORT": str(free_port())}  # fmt: skip
    with open(workdir / "aggregator-latency.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "ecrm_aggregator", "serve"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    changes = Consumer({"bootstrap.servers": bootstrap, "group.id": "latency-probe", "enable.auto.commit": False,
                        "fetch.wait.max.ms": 20})  # fmt: skip
    changes.assign(
        [TopicPartition(PROFILE_CHANGES.name, p, OFFSET_BEGINNING) for p in range(PROFILE_CHANGES.partitions)]
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4"})
    try:
        # Until the worker has joined its group and folds, nothing is scheduled.
        producer.produce(
            EVENTS.name, key=b"warmup", value=orjson.dumps(_latency_event("warmup", "warmup", time.time()))
        )
        producer.flush(10)
        _wait_for_triggers(changes, {"warmup"}, time.monotonic() + 120)
        total = rate * seconds
        due: dict[str, float] = {}
        behind: list[float] = []
        start = time.time() + 0.5

        def offer() -> None:
            """Every 10 ms, the events due by then (a sleep per event would cost more than the sending)."""
            sent = 0
            while sent < total:
                due_now = min(total, max(sent, int((time.time() - start) * rate) + 1))
                for i in range(sent, due_now):
                    message_id, customer, now = f"l-{i}", f"c{i % customers}", time.time()
                    due[message_id] = now
                    behind.append(now - (start + i / rate))
                    value = orjson.dumps(_latency_event(message_id, customer, now))
                    producer.produce(EVENTS.name, key=customer.encode(), value=value)
                producer.poll(0)
                sent = due_now
                time.sleep(0.01)
            producer.flush(30)

        sender = threading.Thread(target=offer, daemon=True)
        sender.start()
        seen = _wait_for_triggers(changes, None, start + seconds + 60, expect=total)
        sender.join(60)
        batches = _histogram(httpx.get(f"http://127.0.0.1:{env['AGGREGATOR_METRICS_PORT']}/metrics").text)
    finally:
        changes.close()
        worker.terminate()
        worker.wait(60)
    warm = {f"l-{i}" for i in range(total // 5)}
    latencies = sorted(seen[m] - due[m] for m in due if m in seen and m not in warm)
    if not latencies:
        raise RuntimeError("no event reached a profile; see aggregator-latency.log")

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

    return {"rate": rate, "seconds": seconds, "customers": customers, "events": total, "measured": len(latencies),
            "missing": total - len(warm) - len(latencies), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "p999_ms": pct(0.999), "max_ms": round(latencies[-1] * 1000, 1),
            "sender_behind_max_ms": round(max(behind, default=0) * 1000, 1), **batches}  # fmt: skip


def _histogram(metrics_text: str) -> dict[str, float]:
    """The worker's batches during the run: how many, their mean size and mean processing time."""
    values = {}
    for line in metrics_text.splitlines():
        for name in ("ecrm_aggregator_batch_records_count", "ecrm_aggregator_batch_records_sum",
                     "ecrm_aggregator_batch_seconds_sum"):  # fmt: skip
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    batches = values.get("ecrm_aggregator_batch_records_count", 0) or 1
    records, seconds = (
        values.get("ecrm_aggregator_batch_records_sum", 0),
        values.get("ecrm_aggregator_batch_seconds_sum", 0),
    )
    return {"batches": int(batches), "mean_batch_records": round(records / batches),
            "mean_batch_ms": round(seconds / batches * 1000, 1)}  # fmt: skip


def _latency_event(message_id: str, customer: str, at: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(at, UTC).isoformat()
    return {"type": "track", "event": "Product Viewed", "messageId": message_id, "userId": customer,
            "properties": {"product_id": "p1"}, "timestamp": stamp, "receivedAt": stamp}  # fmt: skip


def _wait_for_triggers(
    changes: Consumer, wanted: set[str] | None, deadline: float, expect: int = 0
) -> dict[str, float]:
    """Read profile changes until ``wanted`` (or ``expect`` message ids) appeared; id → first seen (epoch s)."""
    seen: dict[str, float] = {}
    while time.monotonic() < deadline if wanted is not None else time.time() < deadline:
        for message in changes.consume(500, 0.02):
            if message.error():
                continue
            _, produced_ms = message.timestamp()
            for trigger in orjson.loads(message.value())["triggers"]:
                seen.setdefault(trigger["message_id"], produced_ms / 1000)
        if wanted is not None and wanted <= seen.keys():
            break
        if expect and len(seen) >= expect:
            break
    return seen


RUNS = ("raw", "kafka-1", "kafka-2", "faust-1")


def main(
    events: Annotated[int, typer.Option(help="Events in the workload.")] = 100_000,
    runs: Annotated[str, typer.Option(help="Comma-separated, from: " + ", ".join(RUNS))] = ",".join(RUNS),
    latency_rate: Annotated[int, typer.Option(help="Offered events/s of the latency run (0: no latency run).")] = 5000,
    latency_seconds: Annotated[int, typer.Option(help="How long the latency run offers events.")] = 30,
    latency_customers: Annotated[int, typer.Option(help="Customers of the latency run (0: as the workload).")] = 0,
) -> None:
    chosen = [r.strip() for r in runs.split(",") if r.strip()]
    if set(chosen) - set(RUNS) or "raw" not in chosen:
        raise typer.BadParameter(f"choose from {', '.join(RUNS)}, raw (the ceiling) included")
    batch_size = AggregatorSettings().aggregator_batch_size
    records = workload(events, customers=max(1, events // 20))
    report: dict[str, Any] = {"events": events, "customers": max(1, events // 20), "at": datetime.now(UTC).isoformat(),
                              "cpus": os.cpu_count(), "batch_size": batch_size, "runs": {}}  # fmt: skip
    for name in chosen:
        with tempfile.TemporaryDirectory() as tmp, infrastructure(Path(tmp)) as (broker, clickhouse):
            fill(broker.bootstrap, records)
            if name == "raw":
                result = measure_raw(broker.bootstrap, clickhouse, events, batch_size)
            else:
                engine, workers = name.split("-")
                result = measure_aggregator(broker.bootstrap, clickhouse, events, engine, int(workers), Path(tmp))
        report["runs"][name] = result
        typer.echo(
            f"{name:14} {result['events_per_s']:>8} events/s  ({result['events']} events, {result['seconds']} s)"
        )
    if latency_rate:
        with tempfile.TemporaryDirectory() as tmp, infrastructure(Path(tmp)) as (broker, clickhouse):
            customers = latency_customers or report["customers"]
            report["latency"] = measure_latency(broker.bootstrap, clickhouse, latency_rate, latency_seconds,
                                                customers, Path(tmp))  # fmt: skip
        typer.echo(f"latency        {report['latency']}")
    raw = report["runs"]["raw"]["events_per_s"]
    for run in report["runs"].values():
        run["of_raw"] = round(run["events_per_s"] / raw, 3)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"aggregator-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| run | events/s | of raw | events | seconds |", "|---|---|---|---|---|"]
    for name, run in report["runs"].items():
        lines.append(f"| {name} | {run['events_per_s']} | {run['of_raw']} | {run['events']} | {run['seconds']} |")
    if "latency" in report:
        lat = report["latency"]
        lines += [
            "",
            f"Event → profile visible at {lat['rate']} events/s offered for {lat['seconds']} s, one worker "
            f"({lat['measured']} events measured after warm-up, {lat['missing']} missing): p50 "
            f"{lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, p99.9 {lat['p999_ms']} ms, max {lat['max_ms']} ms.",
        ]
    (RESULTS / f"aggregator-{stamp}.md").write_text("\n".join(lines) + "\n")
    typer.echo("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
