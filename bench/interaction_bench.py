"""The interaction service's consumer next to its ceiling, on the same profile changes and the same machine.

A fresh tansu broker and a fresh PostgreSQL cluster are started; ``ecrm.profile-changes`` is
filled with ``--changes`` profile changes (the schema's :class:`ProfileChanged`) over
``--customers`` customers, a realistic mix: most fire nothing (views, opens), some fire the
example rules (``services/interaction/examples/rules.yaml``: a cart reminder that waits, an
order's thanks, a welcome on the first identify, a detractor's case), orders and clicks earn
loyalty points, and a few change the contact state (consent, unsubscribe, hard bounce). Then:

* ``ceiling``: a plain confluent-kafka loop that consumes the same records and bulk-upserts the
  profiles into the same (migrated) ``customers`` table of PostgreSQL with psycopg, one
  ``INSERT … ON CONFLICT`` executemany and one commit per batch (of the service's batch size): JSON
  decoded, no validation, no rules;
* ``pg-1`` / ``pg-2``: one or two interaction consumer processes (:class:`InteractionWorker`:
  decode, validate, the batch intake, commit) in one consumer group, on PostgreSQL, with the rules loaded;
* ``sqlite-1``: one process on SQLite (the embedded default).

Each run starts on an empty database and its own consumer group, and is timed from the first
committed batch to the last (the group's committed offsets, polled every 0.2 s); changes/s
counts the changes committed in between.

    uv run --frozen python -m bench.interaction_bench [--changes N] [--runs ceiling,pg-1,pg-2,sqlite-1]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, cast

import psycopg
import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import free_port
from ecrm_embedded.postgres import PostgresCluster, find_pg_bin
from ecrm_schemas.kafka_admin import ensure_topics
from ecrm_schemas.profile import ComputedTraits, CustomerProfile, ProfileChanged, TriggerEvent
from ecrm_schemas.topics import PROFILE_CHANGES

RESULTS = Path(__file__).resolve().parent / "results"
RULES = Path(__file__).resolve().parents[1] / "services" / "interaction" / "examples" / "rules.yaml"


def _service_batch_size() -> int:
    from ecrm_interaction.settings import InteractionSettings

    default = InteractionSettings.model_fields["interaction_batch_size"].default
    return int(os.environ.get("INTERACTION_BATCH_SIZE", default))


BATCH = _service_batch_size()
"""The ceiling's batch: the service's (``INTERACTION_BATCH_SIZE``), so both pay a batch's fixed costs alike."""
RUNS = ("ceiling", "pg-1", "pg-2", "sqlite-1")
app = typer.Typer(add_completion=False)


# --- the workload ---------------------------------------------------------------------------------

MIX: list[tuple[float, str]] = [
    (0.55, "Product Viewed"),
    (0.70, "page"),
    (0.78, "Email Opened"),
    (0.85, "Product Added"),
    (0.90, "Order Completed"),
    (0.93, "identify"),
    (0.96, "Email Link Clicked"),
    (0.97, "NPS Answered"),
    (0.98, "Consent Updated"),
    (0.99, "Unsubscribed"),
    (1.00, "Email Bounced"),
]
"""Cumulative shares of what a profile change's event is."""


def workload(changes: int, customers: int, seed: int = 17) -> list[tuple[bytes, bytes]]:
    """(key, value) records of ``ProfileChanged``, in each customer's order (versions rise)."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(minutes=5)
    versions: dict[str, int] = {}
    records = []
    for i in range(changes):
        busy = rng.random() < 0.2  # a fifth of the changes are the few busiest customers
        customer = f"c{min(int(rng.paretovariate(1.2)) - 1, customers - 1) if busy else rng.randrange(customers)}"
        version = versions[customer] = versions.get(customer, 0) + 1
        at = start + timedelta(milliseconds=i)
        draw = rng.random()
        name = next(n for share, n in MIX if draw < share)
        props: dict[str, Any] = {}
        kind, event_name = "track", cast(str | None, name)
        if name == "page":
            kind, event_name, props = "page", None, {"path": f"/p/{rng.randrange(50)}"}
        elif name == "identify":
            kind, event_name = "identify", None
        elif name in ("Product Viewed", "Product Added"):
            props = {"product_id": f"p{rng.randrange(200)}", "name": "Mug", "price": 12}
        elif name == "Order Completed":
            props = {"order_id": f"o{i}", "total": rng.randrange(20, 400)}
        elif name in ("Email Opened", "Email Link Clicked"):
            props = {"email_id": f"e{rng.randrange(1000)}"}
        elif name == "NPS Answered":
            props = {"score": rng.randrange(11)}
        elif name == "Consent Updated":
            props = {"channel": "email", "granted": rng.random() < 0.7, "purpose": "marketing"}
        elif name == "Email Bounced":
            props = {"email_id": f"e{rng.randrange(1000)}", "bounce_type": "hard"}
        trigger = TriggerEvent(message_id=f"bench-{i}", type=kind, event=event_name, timestamp=at, properties=props)
        email = f"{customer}@example.com"
        profile = CustomerProfile(
            customer_id=customer, user_id=customer, email=email,
            traits={"email": email, "firstName": "Ada", "plan": "pro" if i % 3 else "free"},
            first_seen=start, last_seen=at, event_count=version, orders=version // 10, version=version,
            computed=ComputedTraits(as_of=at),
        )  # fmt: skip
        change = ProfileChanged(
            customer_id=customer, profile=profile, changed=["event_count"], previous={}, triggers=[trigger],
            emitted_at=at,
        )  # fmt: skip
        records.append((customer.encode(), change.model_dump_json().encode()))
    return records


def fill(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for key, value in records:
        while True:
            try:
                producer.produce(PROFILE_CHANGES.name, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


# --- the runs -------------------------------------------------------------------------------------


def committed(bootstrap: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(PROFILE_CHANGES.name, p) for p in range(PROFILE_CHANGES.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=5))
    finally:
        consumer.close()


def watch(
    bootstrap: str, group: str, total: int, timeout_s: float, procs: list[subprocess.Popen[bytes]]
) -> dict[str, Any]:
    """Poll the committed offsets until every record is: changes/s between the first and last commit."""
    deadline = time.monotonic() + timeout_s
    first: tuple[float, int] | None = None
    last = (time.monotonic(), 0)
    while time.monotonic() < deadline:
        done = committed(bootstrap, group)
        now = time.monotonic()
        if done and first is None:
            first = (now, done)
        if done > last[1]:
            last = (now, done)
        if done >= total:
            break
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("an interaction worker exited early")
        time.sleep(0.2)
    if first is None or last[1] <= first[1]:
        return {"changes": last[1], "seconds": 0.0, "changes_per_s": 0, "events_per_s": 0}
    measured, seconds = last[1] - first[1], last[0] - first[0]
    rate = round(measured / seconds)
    return {"changes": measured, "committed": last[1], "seconds": round(seconds, 2), "changes_per_s": rate,
            "events_per_s": rate}  # fmt: skip


def migrated(url: str) -> None:
    from ecrm_interaction.engine.rules_file import load_rules_file
    from ecrm_interaction.storage import rules as rule_store
    from ecrm_interaction.storage.store import Store, make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    spec = load_rules_file(RULES)
    store = Store(engine)
    store.write(rule_store.upsert_rules, spec.templates, spec.rules, "bench")
    if spec.loyalty is not None:
        store.write(rule_store.set_loyalty_program, spec.loyalty, "bench")
    engine.dispose()


def measure_ceiling(bootstrap: str, url: str, total: int) -> dict[str, Any]:
    """Consume the changes and bulk-upsert the profiles into ``customers``, one statement per batch."""
    migrated(url)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ceiling", "enable.auto.commit": False})
    consumer.assign(
        [TopicPartition(PROFILE_CHANGES.name, p, OFFSET_BEGINNING) for p in range(PROFILE_CHANGES.partitions)]
    )
    sql = (
        "INSERT INTO customers (customer_id, profile, profile_version, email, timezone, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (customer_id) DO UPDATE SET profile = excluded.profile,"
        " profile_version = excluded.profile_version, email = excluded.email, timezone = excluded.timezone,"
        " updated_at = excluded.updated_at WHERE customers.profile_version <= excluded.profile_version"
    )
    import orjson

    done, first, started = 0, 0, 0.0
    deadline = time.monotonic() + 600
    with psycopg.connect(url.replace("+psycopg", "")) as connection:
        while done < total and time.monotonic() < deadline:
            messages = [m for m in consumer.consume(BATCH, 1.0) if m.error() is None]
            if not messages:
                continue
            rows = []
            for message in messages:
                body = orjson.loads(message.value() or b"{}")
                profile = body["profile"]
                timezone = (profile.get("traits") or {}).get("timezone")
                rows.append((body["customer_id"], orjson.dumps(profile).decode(), profile["version"],
                             profile.get("email"), timezone if isinstance(timezone, str) else None))  # fmt: skip
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            connection.commit()
            consumer.commit(asynchronous=False)
            done += len(messages)
            if not first:
                first, started = done, time.perf_counter()
    elapsed = time.perf_counter() - started
    consumer.close()
    measured = done - first
    rate = round(measured / elapsed)
    return {"changes": measured, "seconds": round(elapsed, 2), "changes_per_s": rate, "events_per_s": rate}


def measure_workers(bootstrap: str, url: str, total: int, processes: int, group: str, workdir: Path,
                    profile: bool = False) -> dict[str, Any]:  # fmt: skip
    migrated(url)
    env = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "INTERACTION_GROUP_ID": group,
           "LOG_LEVEL": "WARNING"}  # fmt: skip
    procs = []
    for index in range(processes):
        command = [sys.executable, "-m", "bench.interaction_bench", "worker"]
        if profile:
            svg = workdir / f"{group}-{index}.txt"
            command = ["py-spy", "record", "-f", "raw", "-r", "50", "-o", str(svg), "--", *command]
        log = (workdir / f"{group}-{index}.log").open("wb")
        procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        result = watch(bootstrap, group, total, 900, procs)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    return result | {"processes": processes}


@app.command("worker", hidden=True)
def worker() -> None:
    """One interaction consumer (no API, no dispatcher), until interrupted."""
    from ecrm_interaction.consumer.worker import InteractionWorker
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage.store import Store, make_engine

    settings = InteractionSettings()
    interaction = InteractionWorker(settings, Store(make_engine(settings.database_url)))
    stopping = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await interaction.run(stopping)

    asyncio.run(main())


def new_database(cluster: PostgresCluster, name: str) -> str:
    with psycopg.connect(cluster.url().replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(name)


@app.command()
def run(
    changes: Annotated[int, typer.Option(help="profile changes on the topic")] = 30_000,
    customers: Annotated[int, typer.Option(help="customers they are spread over")] = 10_000,
    runs: Annotated[
        str, typer.Option(help="comma-separated: ceiling, pg-1, pg-2, sqlite-1")
    ] = "ceiling,pg-1,pg-2,sqlite-1",
    profile: Annotated[
        bool, typer.Option(help="py-spy record the interaction workers (raw, to bench/results)")
    ] = False,
    out: Annotated[Path, typer.Option()] = RESULTS,
) -> None:
    result = interaction_stage(changes, customers, runs.split(","), profile, out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"interaction-{stamp}.json").write_text(json.dumps(result, indent=2))
    (out / f"interaction-{stamp}.md").write_text(report(result))
    print(report(result))


def interaction_stage(changes: int, customers: int, runs: list[str], profile: bool = False,
                      out: Path = RESULTS) -> dict[str, Any]:  # fmt: skip
    """Every run of ``runs`` on its own database and consumer group; the ratios to the ceiling."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries (initdb, pg_ctl) are needed")
    records = workload(changes, customers)
    results: dict[str, Any] = {"changes": changes, "customers": customers, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="ecrm-ibench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        broker = TansuBroker(port=free_port(), log_path=workdir / "kafka.log").start()
        cluster = PostgresCluster(workdir / "pg", free_port(), bin_dir).start()
        try:
            ensure_topics({"bootstrap.servers": broker.bootstrap})
            fill(broker.bootstrap, records)
            for name in runs:
                if name == "ceiling":
                    figures = measure_ceiling(broker.bootstrap, new_database(cluster, "ceiling"), changes)
                elif name.startswith("pg-"):
                    url = new_database(cluster, name.replace("-", "_"))
                    figures = measure_workers(broker.bootstrap, url, changes, int(name[3:]), name, workdir, profile)
                elif name.startswith("sqlite-"):
                    url = f"sqlite:///{workdir}/{name}.db"
                    figures = measure_workers(broker.bootstrap, url, changes, int(name[7:]), name, workdir, profile)
                else:
                    raise SystemExit(f"unknown run {name!r}")
                results["runs"][name] = figures
                print(name, figures, flush=True)
            if profile:
                out.mkdir(parents=True, exist_ok=True)
                for raw in workdir.glob("*.txt"):
                    (out / f"interaction-profile-{raw.name}").write_bytes(raw.read_bytes())
        finally:
            cluster.stop()
            broker.stop()
    figures = results["runs"]
    ceiling = figures.get("ceiling", {}).get("changes_per_s")
    ratios = {}
    for name, f in figures.items():
        if name != "ceiling" and ceiling:
            ratios[f"{name} / ceiling"] = round(f["changes_per_s"] / ceiling, 3)
    if "pg-1" in figures and "pg-2" in figures and figures["pg-1"]["changes_per_s"]:
        ratios["pg-2 / pg-1"] = round(figures["pg-2"]["changes_per_s"] / figures["pg-1"]["changes_per_s"], 2)
    results["ratios"] = ratios
    results["aims"] = {
        "pg-1 >= 5000/s": figures.get("pg-1", {}).get("changes_per_s", 0) >= 5000,
        "sqlite-1 >= 5000/s": figures.get("sqlite-1", {}).get("changes_per_s", 0) >= 5000,
        "pg-1 >= 0.3 x ceiling": ratios.get("pg-1 / ceiling", 0) >= 0.3,
        "pg-2 >= 1.8 x pg-1": ratios.get("pg-2 / pg-1", 0) >= 1.8,
    }
    return results


def report(result: dict[str, Any]) -> str:
    lines = [f"# Interaction consumer: {result['changes']} profile changes over {result['customers']} customers", "",
             "| run | changes/s | changes | seconds |", "| --- | ---: | ---: | ---: |"]  # fmt: skip
    for name, f in result["runs"].items():
        lines.append(f"| {name} | {f['changes_per_s']:,} | {f['changes']:,} | {f['seconds']} |")
    lines += ["", "| ratio | value |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in result["ratios"].items()]
    lines += ["", "| aim | met |", "| --- | --- |"]
    lines += [f"| {k} | {'yes' if v else '**no**'} |" for k, v in result["aims"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app()
