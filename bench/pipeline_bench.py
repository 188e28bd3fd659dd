"""The whole pipeline under open-loop load: collector → Kafka → aggregator → interaction → SMTP.

Starts the embedded stack (``make run``'s: tansu, chdb over HTTP, the SMTP sink, the three
services as separate processes), then offers the shop workload in steps of events/s with
:mod:`bench.open_loop` (batches of 50, and one step of single events). Alongside the load:

* probes: a ``Bench Probe`` track event for one of 20 probe customers every 50 ms, each
  with its own message id. A rule emails the customer on every probe (transactional, so no
  cap or quiet hour holds it). Event → profile is the broker timestamp of the first
  ``ecrm.profile-changes`` record naming the probe among its triggers, minus when it was
  sent; event → email is when the SMTP sink wrote the message, minus when it was sent;
* a sampler, once a second: every process's RSS, the collector's CPU time, the services'
  ``/metrics`` (consumer lag, counters, histograms).

Each step's figures come from the difference of the services' metrics between the start
and the end of its measured window (after its warm-up).
"""

from __future__ import annotations

import email
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench import prom
from bench.open_loop import percentile
from bench.workload import Workload, write_bodies
from ecrm_embedded.net import free_port
from ecrm_embedded.postgres import PostgresCluster, find_pg_bin
from ecrm_embedded.stack import Stack, StackSettings
from ecrm_schemas.topics import PROFILE_CHANGES

WRITE_KEY = "ecrm_bench_write_key"
PROBE_EVENT = "Bench Probe"
PROBE_CUSTOMERS = 20
RULES = f"""
templates:
  - id: probe
    subject: "probe {{{{ event.message_id }}}}"
    text: "Probe {{{{ event.message_id }}}} for {{{{ profile.customer_id }}}}."
rules:
  - id: probe
    name: Benchmark probe
    category: transactional
    trigger: {{kind: event, event: "{PROBE_EVENT}"}}
    actions: [{{kind: email, template: probe}}]
"""


@dataclass(frozen=True)
class Step:
    """One offered rate: ``shape`` is ``batch`` (50 events a request) or ``single``."""

    rate: int
    seconds: float
    warmup: float
    shape: str = "batch"

    @property
    def name(self) -> str:
        return f"{self.shape}@{self.rate}"


@dataclass
class Sample:
    at: float
    rss_mb: dict[str, float]
    lag: float
    collector_cpu_s: float
    scrapes: dict[str, prom.Samples]


@dataclass
class Probes:
    """Probe events sent and when they showed up downstream (wall-clock seconds)."""

    sent: dict[str, float] = field(default_factory=dict)
    profile_seen: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Pipeline:
    """The stack, its watchers and its load; ``run_step`` measures one step."""

    def __init__(
        self, workdir: Path, customers: int, seed: int, on_progress: Callable[[str], None], database: str = "postgres"
    ) -> None:
        self.workdir, self.customers, self.seed, self.say = workdir, customers, seed, on_progress
        self.postgres: PostgresCluster | None = None
        self.database = database
        if database == "postgres":
            bin_dir = find_pg_bin()
            if bin_dir is None:
                raise RuntimeError("PostgreSQL's server binaries are missing (apt-get install postgresql)")
            # Under /tmp itself: the server runs as the postgres user, who must reach the directory.
            self.postgres = PostgresCluster(Path(tempfile.mkdtemp(prefix="ecrm-bench-pg-")), free_port(), bin_dir)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rules.yaml").write_text(RULES)
        self.settings = StackSettings(
            ecrm_data_dir=workdir / "stack",
            kafka_port=free_port(),
            clickhouse_port=free_port(),
            smtp_port=free_port(),
            collector_port=free_port(),
            interaction_port=free_port(),
            aggregator_metrics_port=free_port(),
            collector_write_keys=WRITE_KEY,
            interaction_rules_file=workdir / "rules.yaml",
            database_url=self.postgres.url() if self.postgres else "",
        )
        self.stack = Stack(self.settings)
        self.probes = Probes()
        self.samples: list[Sample] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- the stack -------------------------------------------------------------------

    def start(self) -> None:
        os.environ.update(
            {
                "LOG_LEVEL": "WARNING",
                "COLLECTOR_RATE_LIMIT": "1000000/second",
                "COLLECTOR_RATE_LIMIT_PER_S": "1000000",
                "COLLECTOR_RATE_LIMIT_BURST": "1000000",
                "INTERACTION_FREQUENCY_CAPS": "off",
                "INTERACTION_QUIET_HOURS": "off",
                "INTERACTION_DISPATCH_INTERVAL_S": "0.1",
            }
        )
        if self.postgres is not None:
            self.postgres.start()
        self.stack.start()
        self._prime_probe_customers()
        for target in (self._sample_forever, self._watch_profiles, self._probe_forever):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(10)
        self.stack.stop()
        if self.postgres is not None:
            self.postgres.stop()

    @property
    def collector_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.collector_port}"

    def processes(self) -> dict[str, psutil.Process]:
        found = {child.name: psutil.Process(child.process.pid) for child in self.stack.children}
        if self.stack.broker is not None and self.stack.broker.process is not None:
            found["kafka"] = psutil.Process(self.stack.broker.process.pid)
        return found

    def _prime_probe_customers(self) -> None:
        with httpx.Client(base_url=self.collector_url, auth=(WRITE_KEY, ""), timeout=10) as client:
            for n in range(PROBE_CUSTOMERS):
                traits = {"email": f"probe{n}@bench.example", "firstName": f"Probe {n}"}
                client.post("/v1/identify", json={"userId": f"probe-{n}", "traits": traits}).raise_for_status()

    # --- watchers --------------------------------------------------------------------

    def _scrape(self, port: int) -> prom.Samples:
        try:
            return prom.parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
        except httpx.HTTPError:
            return {}

    def scrape_all(self) -> dict[str, prom.Samples]:
        s = self.settings
        return {
            "collector": self._scrape(s.collector_port),
            "aggregator": self._scrape(s.aggregator_metrics_port),
            "interaction": self._scrape(s.interaction_port),
        }

    def _sample_forever(self) -> None:
        processes = self.processes()
        while not self._stopping.is_set():
            rss = {}
            for name, process in processes.items():
                try:
                    rss[name] = sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20
                except psutil.Error:
                    continue
            scrapes = self.scrape_all()
            try:
                cpu = processes["collector"].cpu_times()
                collector_cpu = cpu.user + cpu.system
            except (psutil.Error, KeyError):
                collector_cpu = 0.0
            lag = prom.total(scrapes["aggregator"], "ecrm_aggregator_consumer_lag")
            self.samples.append(Sample(time.time(), rss, lag, collector_cpu, scrapes))
            self._stopping.wait(1.0)

    def _watch_profiles(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": f"127.0.0.1:{self.settings.kafka_port}",
                "group.id": "bench-probe",
                "enable.auto.commit": False,
            }
        )
        consumer.assign(
            [TopicPartition(PROFILE_CHANGES.name, p, OFFSET_END) for p in range(PROFILE_CHANGES.partitions)]
        )
        while not self._stopping.is_set():
            for message in consumer.consume(500, 0.2):
                value = message.value()
                if message.error() or not value or b"probe-" not in value:
                    continue
                seen_at = message.timestamp()[1] / 1000
                for trigger in orjson.loads(value).get("triggers", []):
                    message_id = trigger.get("message_id", "")
                    if message_id.startswith("probe-"):
                        with self.probes.lock:
                            self.probes.profile_seen.setdefault(message_id, seen_at)
        consumer.close()

    def _probe_forever(self) -> None:
        count = 0
        with httpx.Client(base_url=self.collector_url, auth=(WRITE_KEY, ""), timeout=10) as client:
            while not self._stopping.is_set():
                message_id = f"probe-{count}"
                body = {"userId": f"probe-{count % PROBE_CUSTOMERS}", "event": PROBE_EVENT, "messageId": message_id}
                sent_at = time.time()
                try:
                    if client.post("/v1/track", json=body).status_code == 200:
                        with self.probes.lock:
                            self.probes.sent[message_id] = sent_at
                except httpx.HTTPError:
                    pass
                count += 1
                self._stopping.wait(max(0.0, 0.05 - (time.time() - sent_at)))

    def emails(self) -> dict[str, float]:
        """Probe id → when the SMTP sink wrote its email."""
        found = {}
        for path in (self.stack.data_dir / "mail").glob("*.eml"):
            with path.open("rb") as handle:
                head = handle.read(4096)
            subject = email.message_from_bytes(head).get("Subject", "")
            if subject.startswith("probe "):
                found[subject.removeprefix("probe ").strip()] = path.stat().st_mtime
        return found

    # --- one step ----------------------------------------------------------------------

    def bodies_for(self, step: Step, index: int) -> Path:
        """Unique bodies for the step (a repeated message id would be deduplicated, not folded)."""
        workload = Workload(seed=self.seed + index, customers=self.customers)
        # At most a minute of distinct bodies: the generator renames the message ids on each round.
        events = int(step.rate * min(60.0, step.seconds + step.warmup) * 1.02) + 50
        path = self.workdir / f"bodies-{index}.ndjson"
        if step.shape == "batch":
            write_bodies(path, workload.batch_bodies(events // 50 + 1))
        else:
            write_bodies(path, workload.single_bodies(events, "track"))
        return path

    def run_step(self, step: Step, index: int) -> dict[str, Any]:
        bodies = self.bodies_for(step, index)
        route = "/v1/batch" if step.shape == "batch" else "/v1/track"
        argv = [sys.executable, "-m", "bench.open_loop", "--url", self.collector_url + route, "--bodies", str(bodies),
                "--rate", str(step.rate), "--seconds", str(step.seconds), "--warmup", str(step.warmup),
                "--events-per-body", "50" if step.shape == "batch" else "1", "--write-key", WRITE_KEY]  # fmt: skip
        self.say(f"{step.name}: {step.warmup:.0f} s warm-up, {step.seconds:.0f} s measured")
        generator = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started = time.time()
        time.sleep(step.warmup)
        window_start = time.time()
        before = self.scrape_all()
        cpu_before = self._collector_cpu()
        time.sleep(step.seconds)
        after = self.scrape_all()
        cpu_after = self._collector_cpu()
        window_end = time.time()
        out, err = generator.communicate(timeout=step.seconds + step.warmup + 60)
        if generator.returncode != 0:
            raise RuntimeError(f"the load generator failed: {err.decode()[-2000:]}")
        http = orjson.loads(out.splitlines()[-1])
        drained_s = self.drain(window_start, window_end)
        self.stack.check_children()
        figures = self.figures(step, http, before, after, cpu_after - cpu_before, started, window_start, window_end)
        figures["drain_s"] = drained_s
        return figures

    def drain(self, window_start: float, window_end: float, limit_s: float = 180.0) -> float | None:
        """Wait until the window's probes are in profiles and mailboxes (so that late ones count
        with their real latency, and the next step starts from an empty pipeline); seconds
        waited, or ``None`` when ``limit_s`` ran out first."""
        began = time.monotonic()
        while time.monotonic() - began < limit_s:
            with self.probes.lock:
                sent = [k for k, v in self.probes.sent.items() if window_start <= v < window_end]
                missing_profile = [k for k in sent if k not in self.probes.profile_seen]
            mails = self.emails()
            if not missing_profile and all(k in mails for k in sent):
                return round(time.monotonic() - began, 1)
            time.sleep(1.0)
        return None

    def _collector_cpu(self) -> float:
        cpu = self.processes()["collector"].cpu_times()
        return cpu.user + cpu.system

    def figures(
        self, step: Step, http: dict[str, Any], before: dict[str, prom.Samples], after: dict[str, prom.Samples],
        collector_cpu_s: float, started: float, window_start: float, window_end: float,
    ) -> dict[str, Any]:  # fmt: skip
        seconds = window_end - window_start
        c0, c1 = before["collector"], after["collector"]
        a0, a1 = before["aggregator"], after["aggregator"]
        i0, i1 = before["interaction"], after["interaction"]
        accepted = prom.delta(c0, c1, "ecrm_collector_events_accepted_total")
        rejected = prom.delta(c0, c1, "ecrm_collector_events_rejected_total")
        produce = prom.buckets(c0, c1, "ecrm_collector_produce_seconds")
        insert = prom.buckets(a0, a1, "ecrm_aggregator_clickhouse_insert_seconds", table="events")
        decision = prom.buckets(i0, i1, "ecrm_interaction_decision_seconds")
        with self.probes.lock:
            sent = {k: v for k, v in self.probes.sent.items() if window_start <= v < window_end}
            seen = dict(self.probes.profile_seen)
        mails = self.emails()
        to_profile = [seen[k] - v for k, v in sent.items() if k in seen]
        to_email = [mails[k] - v for k, v in sent.items() if k in mails]
        window_samples = [s for s in self.samples if started <= s.at <= window_end + 3]
        return {
            "step": step.name,
            "shape": step.shape,
            "offered_events_per_s": step.rate,
            "seconds": round(seconds, 1),
            "http": http,
            "collector": {
                "accepted_events_per_s": round(accepted / seconds, 1),
                "rejected_events_per_s": round(rejected / seconds, 1),
                "cpu_s_per_1k_events": round(collector_cpu_s / max(1.0, accepted + rejected) * 1000, 4),
                "produce_ack_p50_ms": _ms(prom.quantile(produce, 0.5)),
                "produce_ack_p99_ms": _ms(prom.quantile(produce, 0.99)),
            },
            "aggregator": {
                "events_per_s": round(prom.delta(a0, a1, "ecrm_aggregator_events_consumed_total") / seconds, 1),
                "rows_per_insert": _round(prom.mean(a0, a1, "ecrm_aggregator_batch_records")),
                "insert_p50_ms": _ms(prom.quantile(insert, 0.5)),
                "insert_p99_ms": _ms(prom.quantile(insert, 0.99)),
                "lag_max": max((s.lag for s in window_samples), default=0.0),
                "lag_end": window_samples[-1].lag if window_samples else 0.0,
            },
            "interaction": {
                "decisions_per_s": round(prom.delta(i0, i1, "ecrm_interaction_decisions_total") / seconds, 1),
                "profile_changes_per_s": round(
                    prom.delta(i0, i1, "ecrm_interaction_profile_changes_total") / seconds, 1
                ),
                "decision_p50_ms": _ms(prom.quantile(decision, 0.5)),
                "decision_p99_ms": _ms(prom.quantile(decision, 0.99)),
            },
            "end_to_end": {
                "probes": len(sent),
                "profile_seen": len(to_profile),
                "email_seen": len(to_email),
                "profile_p50_ms": _percentile_ms(to_profile, 50),
                "profile_p99_ms": _percentile_ms(to_profile, 99),
                "email_p50_ms": _percentile_ms(to_email, 50),
                "email_p99_ms": _percentile_ms(to_email, 99),
            },
        }

    # --- memory ----------------------------------------------------------------------

    def memory(self, since: float = 0.0) -> dict[str, dict[str, float]]:
        """Peak and steady (median of the second half) RSS of every process, in MiB."""
        samples = [s for s in self.samples if s.at >= since]
        names = sorted({name for s in samples for name in s.rss_mb})
        out = {}
        for name in names:
            series = [s.rss_mb[name] for s in samples if name in s.rss_mb]
            if not series:
                continue
            half = series[len(series) // 2 :]
            out[name] = {"peak_mb": round(max(series), 1), "steady_mb": round(statistics.median(half), 1),
                         "first_mb": round(series[0], 1), "last_mb": round(series[-1], 1)}  # fmt: skip
        return out

    def series(self, since: float = 0.0) -> dict[str, Any]:
        """Time series for the plots: lag and RSS per process, seconds from ``since``."""
        samples = [s for s in self.samples if s.at >= since]
        return {
            "t": [round(s.at - since, 1) for s in samples],
            "lag": [s.lag for s in samples],
            "rss_mb": {
                name: [round(s.rss_mb.get(name, 0.0), 1) for s in samples]
                for name in sorted({n for s in samples for n in s.rss_mb})
            },
        }


def _percentile_ms(seconds: list[float], p: float) -> float | None:
    return round(percentile(seconds, p) * 1000, 1) if seconds else None


def _ms(seconds: float) -> float | None:
    return None if seconds != seconds else round(seconds * 1000, 1)  # nan: nothing observed


def _round(value: float) -> float | None:
    return None if value != value else round(value, 1)
