"""Where one aggregator process spends its time on the suite's realistic workload.

The records are what the collector produces for the suite's workload (:mod:`bench.workload`,
Zipf-skewed activity over ``--customers``); they go through :meth:`BatchWriter.process` in
this process, batch by batch, against a fresh chdb-backed ClickHouse server and a fresh
tansu broker (the changes are produced and acknowledged, as in production). The report
gives events/s, each stage's seconds (ClickHouse reads and writes, the pure steps, producing)
and a cProfile listing by own time, written to ``bench/results/aggregator-profile-*.md``.

    uv run --frozen python -m bench.aggregator_profile [--events 50000] [--customers 100000] [--batches-twice]
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import collector_bench
from bench.aggregator_bench import DATABASE, infrastructure
from bench.workload import Workload
from ecrm_aggregator import batch_writer
from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.clickhouse_store import ClickHouseStore
from ecrm_aggregator.decode import SourceRecord
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.topics import EVENTS

RESULTS = Path(__file__).resolve().parent / "results"
PURE_STEPS = ("plan_batch", "decide", "to_look_up", "new_events", "group_by_customer", "merges_to_apply",
              "fold_batch", "membership_changes", "review_traits")  # fmt: skip
"""The pure steps :mod:`ecrm_aggregator.batch_writer` calls, timed where it looks them up."""


def source_records(events: int, customers: int, seed: int = 7) -> list[SourceRecord]:
    """The collector's records for the workload, spread over the events topic's partitions by key."""
    bodies = Workload(seed=seed, customers=customers).batch_bodies(events // 50 + 50)
    offsets: dict[int, int] = defaultdict(int)
    records = []
    for record in collector_bench.collector_records(bodies)[:events]:
        partition = zlib.crc32(record.key or b"") % EVENTS.partitions
        records.append(SourceRecord(partition, offsets[partition], record.key, record.value))
        offsets[partition] += 1
    return records


class Timed:
    """Wraps the store's methods and the producer's flush to sum the seconds spent in each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        inner: Callable[..., Any] | None = getattr(owner, name, None)
        if inner is None:  # an older checkout's writer (the harness also profiles those)
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label or name] += time.perf_counter() - t0
                self.calls[label or name] += 1

        setattr(owner, name, timed)


def main(
    events: Annotated[int, typer.Option(help="Events of the workload.")] = 50_000,
    customers: Annotated[int, typer.Option(help="Customers the workload draws from (Zipf).")] = 100_000,
    rounds: Annotated[int, typer.Option(help="Times the workload is sent (later rounds find profiles).")] = 1,
    batch_size: Annotated[int, typer.Option(help="Records per batch (0: the aggregator's setting).")] = 0,
    top: Annotated[int, typer.Option(help="Lines of the cProfile listing.")] = 40,
    plain: Annotated[bool, typer.Option(help="Without cProfile: true seconds per stage, no listing.")] = False,
) -> None:
    size = batch_size or AggregatorSettings().aggregator_batch_size
    base = source_records(events, customers)
    batches: list[list[SourceRecord]] = []
    for round_ in range(rounds):
        shift = round_ * (base[-1].offset + 1 if base else 0) * EVENTS.partitions
        records = [SourceRecord(r.partition, r.offset + shift, r.key, _renamed(r.value, round_)) for r in base]
        batches += [records[i : i + size] for i in range(0, len(records), size)]
    with tempfile.TemporaryDirectory() as tmp, infrastructure(Path(tmp)) as (broker, clickhouse):
        client = clickhouse.client()
        migrate(client, DATABASE)
        store = ClickHouseStore(clickhouse.service_client(), DATABASE)
        producer = ReliableProducer({"bootstrap.servers": broker.bootstrap})
        timed = Timed()
        for name in ("load_links", "profile_versions", "load_profiles", "load_histories", "stored_positions",
                     "insert_events", "insert_identity",
                     "insert_profiles", "load_history", "segment_members", "stored_membership",
                     "insert_membership"):  # fmt: skip
            timed.wrap(store, name)
        writer = BatchWriter(store, producer, max_invalid_ratio=0.5)
        timed.wrap(writer, "_produce", "produce (encode + acks)")
        for step in PURE_STEPS:
            timed.wrap(batch_writer, step, f"pure: {step}")
        profiler = cProfile.Profile()
        started = time.perf_counter()
        if not plain:
            profiler.enable()
        gc.disable()  # as the consumer runtime runs a batch: collected between batches only
        for batch in batches:
            writer.process(batch)
            gc.collect(1)
        profiler.disable()
        gc.enable()
        elapsed = time.perf_counter() - started
    total = sum(len(b) for b in batches)
    io_seconds = sum(timed.seconds.values())
    lines = [
        f"# Aggregator profile ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{total:,} records in {len(batches)} batches of up to {size:,}, {customers:,} customers, {rounds} round(s): "
        f"{elapsed:.2f} s, **{total / elapsed:,.0f} events/s**"
        + ("." if plain else " (under cProfile, which slows Python down)."),
        "",
        "| stage | seconds | calls | µs per event |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in sorted(timed.seconds.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {seconds:.2f} | {timed.calls[name]} | {seconds / total * 1e6:.1f} |")
    rest = elapsed - io_seconds
    rest_label = "everything else (rows, metrics, the writer's own code)"
    lines.append(f"| {rest_label} | {rest:.2f} | | {rest / total * 1e6:.1f} |")
    if not plain:
        listing = io.StringIO()
        pstats.Stats(profiler, stream=listing).sort_stats("tottime").print_stats(top)
        lines += ["", "```", *[line for line in listing.getvalue().splitlines() if line.strip()][-top - 2 :], "```"]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"aggregator-profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.md"
    out.write_text("\n".join(lines) + "\n")
    typer.echo("\n".join(lines))
    typer.echo(f"\nwritten to {out}")


def _renamed(value: bytes, round_: int) -> bytes:
    """The same event sent again in a later round, as a new event (its message id changed)."""
    if not round_:
        return value
    return value.replace(b'"messageId":"', f'"messageId":"r{round_}-'.encode(), 1)


if __name__ == "__main__":
    typer.run(main)
