"""``make bench``: every stage measured against its own ceiling in one run, on one machine.

Stages, in order (each starts its own fresh broker, ClickHouse and services):

1. **collector** (wrk, closed loop: capacity): the raw confluent-kafka produce loop, the no-op
   FastAPI handler (batches and single events), the collector's batch and single-event
   routes (:mod:`bench.collector_bench`); the collector's validation alone, in-process;
2. **aggregator**: a bare consume loop, a bare ClickHouse insert loop, the plain
   consume → batch → insert loop, the aggregator (one and two processes) and its
   faust-streaming engine, all on the records the collector produced for the workload
   (:mod:`bench.aggregator_bench`, :mod:`bench.ceilings`);
3. **interaction**: the interaction service's consumer (one and two processes on PostgreSQL,
   one on SQLite) against a plain consume → bulk-upsert loop into the same tables, on the
   same profile changes (:mod:`bench.interaction_bench`);
4. **pipeline**: the embedded stack under open-loop offered rates in steps, with probes for
   event → profile and event → email, the services' own metrics, RSS of every process, and a
   py-spy profile of the aggregator and the interaction service at 5k events/s
   (:mod:`bench.pipeline_bench`);
5. **soak** (``--soak SECONDS``, 900 with ``--full``): one fixed rate, RSS and lag over time;
6. **console**: every page of the staff console's role table, p50/p95/max against the 300 ms
   p95 goal, on a seeded store of 10,000 customers and 1 million events (100,000 and 10
   million with ``--full``, the goal's size), kept between runs (:mod:`bench.console_bench`);
7. **reports**: every report of ``ecrm_interaction.reports.REPORTS`` with its representative
   filters, p50/p95/max against the 1 s p95 goal, each beside a bare ClickHouse scan of the
   columns it reads, on the console's seeded store (:mod:`bench.reports_bench`);
8. **assistant**: the website assistant's accuracy on the held-out questions per language and
   matcher, off-topic refusal, answer latency through the chat API beside the model's own
   embedding time, and the model's memory (:mod:`bench.assistant_bench`).

Writes ``bench/results/suite-<UTC time>.json``, ``.md`` and PNG plots, and prints the summary.

    uv run --frozen python -m bench.suite            # quick: about 5 minutes
    uv run --frozen python -m bench.suite --full     # 3 repetitions, more steps, 15-minute soak
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import (
    aggregator_bench,
    assistant_bench,
    ceilings,
    collector_bench,
    console_bench,
    interaction_bench,
    plots,
    report,
    reports_bench,
)
from bench.collector_bench import Bodies, Params
from bench.console_seed import FULL, QUICK, Size
from bench.pipeline_bench import Pipeline, Step
from bench.workload import Workload, describe, write_bodies
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_collector.settings import CollectorSettings

RESULTS = Path(__file__).resolve().parent / "results"
COLLECTOR_SCENARIOS = ("raw-produce", "noop-batch", "noop-single", "collector-batch", "collector-single")
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0] if __doc__ else None)
console = Console(stderr=True)


@dataclass(frozen=True)
class Plan:
    customers: int
    zipf_s: float
    seed: int
    repeat: int
    collector_seconds: int
    collector_warmup: int
    aggregator_events: int
    aggregator_runs: tuple[str, ...]
    interaction_changes: int
    steps: tuple[Step, ...]
    soak_seconds: float
    soak_rate: int
    profile_seconds: float
    stages: tuple[str, ...]
    database: str = "postgres"
    console_size: Size = QUICK
    reports_size: Size = QUICK

    @classmethod
    def make(cls, full: bool, customers: int, seed: int, repeat: int | None, soak: float | None,
             soak_rate: int, stages: tuple[str, ...], database: str = "postgres",
             rates: tuple[int, ...] | None = None) -> Plan:  # fmt: skip
        measured, warmup = (30.0, 10.0) if full else (15.0, 5.0)
        rates = rates or ((1000, 5000, 10_000, 20_000) if full else (1000, 5000))
        # The single-event step first: after the highest rate the pipeline may still be draining.
        steps = (
            Step(2000 if full else 1000, measured, warmup, "single"),
            *(Step(rate, measured, warmup) for rate in rates),
        )
        return cls(
            customers=customers, zipf_s=0.8, seed=seed, repeat=repeat or (3 if full else 1),
            collector_seconds=10 if full else 5, collector_warmup=2 if full else 1,
            aggregator_events=200_000 if full else 50_000,
            aggregator_runs=("raw", "kafka-1", "kafka-2", "faust-1"),
            interaction_changes=60_000 if full else 20_000,
            steps=steps, soak_seconds=soak if soak is not None else (900.0 if full else 0.0), soak_rate=soak_rate,
            profile_seconds=10.0, stages=stages, database=database, console_size=FULL if full else QUICK,
            reports_size=FULL if full else QUICK,
        )  # fmt: skip


class Run:
    """One suite run: the plan, the shared workload, the progress display and the report."""

    def __init__(self, plan: Plan, progress: Progress, workdir: Path) -> None:
        self.plan, self.progress, self.workdir = plan, progress, workdir
        self.task = progress.add_task("preparing", total=self._units())
        self.findings: list[str] = []
        self.result: dict[str, Any] = {}

    def _units(self) -> int:
        p = self.plan
        units = 0
        if "collector" in p.stages:
            units += p.repeat * (len(COLLECTOR_SCENARIOS) + 1)
        if "aggregator" in p.stages:
            units += p.repeat * (len(p.aggregator_runs) + 2)
        if "interaction" in p.stages:
            units += p.repeat
        if "pipeline" in p.stages:
            units += p.repeat * len(p.steps) + 1
        if "console" in p.stages:
            units += 1
        if "reports" in p.stages:
            units += 1
        if "assistant" in p.stages:
            units += 1
        return units + (1 if p.soak_seconds else 0)

    def say(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def done(self, text: str) -> None:
        self.progress.advance(self.task)
        self.progress.console.print(f"  {text}")

    # --- the workload ----------------------------------------------------------------

    def workload(self) -> tuple[list[bytes], list[bytes], list[Any]]:
        p = self.plan
        self.say(f"generating the workload ({p.customers:,} customers)")
        workload = Workload(seed=p.seed, customers=p.customers, zipf_s=p.zipf_s)
        batch_bodies = workload.batch_bodies(max(400, p.aggregator_events // 50 + 50))
        single_bodies = workload.single_bodies(5000, "track")
        records = collector_bench.collector_records(batch_bodies)
        self.result["workload"] = {
            "batch": describe(batch_bodies, 50),
            "single": describe(single_bodies, 1),
            "accepted_records": len(records),
            "mix": dict(Counter(e.get("event") or e["type"] for e in Workload(seed=p.seed, customers=p.customers,
                                                                               zipf_s=p.zipf_s).events(20_000))),
        }  # fmt: skip
        return batch_bodies, single_bodies, records

    # --- stage 1 ---------------------------------------------------------------------

    def collector(self, batch_bodies: list[bytes], single_bodies: list[bytes], records: list[Any]) -> None:
        p = self.plan
        params = Params(
            duration_s=p.collector_seconds, warmup_s=p.collector_warmup, connections=32, threads=1, repeat=p.repeat,
            linger_ms=CollectorSettings.model_fields["collector_linger_ms"].default, seed=p.seed, batch_size=50,
            batch_bodies=len(batch_bodies), single_bodies=len(single_bodies), scenarios=COLLECTOR_SCENARIOS,
            collector_env={}, quick=p.repeat == 1,
        )  # fmt: skip
        bodies = Bodies(self.workdir / "batch.ndjson", self.workdir / "single.ndjson", 50)
        write_bodies(bodies.batch, batch_bodies[:400])
        write_bodies(bodies.single, single_bodies)
        measures: dict[str, Callable[[], collector_bench.Measurement]] = {
            "raw-produce": lambda: collector_bench.measure_raw_produce(params, records, self.workdir),
            "noop-batch": lambda: collector_bench.measure_noop(params, bodies, "batch", self.workdir),
            "noop-single": lambda: collector_bench.measure_noop(params, bodies, "single", self.workdir),
            "collector-batch": lambda: collector_bench.measure_collector(params, bodies, "batch", self.workdir),
            "collector-single": lambda: collector_bench.measure_collector(params, bodies, "single", self.workdir),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in COLLECTOR_SCENARIOS}
        validation: list[dict[str, Any]] = []
        for repeat in range(p.repeat):  # round-robin: drift in the machine's speed spreads over all
            for name in COLLECTOR_SCENARIOS:
                self.say(f"[{repeat + 1}/{p.repeat}] collector: {name}")
                measurement = measures[name]()
                runs[name].append({k: v for k, v in measurement.__dict__.items() if k != "detail"}
                                  | {"records_check": measurement.detail.get("records_check"),
                                     "machine": measurement.detail.get("machine")})  # fmt: skip
                self.done(f"{name}: {measurement.events_per_s:,.0f} events/s, p99 {measurement.p99_ms:.1f} ms")
            self.say(f"[{repeat + 1}/{p.repeat}] validation alone")
            validation.append(ceilings.validation_alone(batch_bodies[:400]))
            self.done(f"validation alone: {validation[-1]['events_per_s']:,} events/s")
        self.result["collector"] = {name: report.merge_runs(r) for name, r in runs.items()}
        self.result.setdefault("ceilings", {})["validation"] = report.merge_runs(validation)

    # --- stage 2 ---------------------------------------------------------------------

    def aggregator(self, records: list[Any]) -> None:
        p = self.plan
        values = [(r.key or b"", r.value) for r in records][: p.aggregator_events]
        total = len(values)
        self.result["parameters"]["aggregator_events"] = total
        batch_size = AggregatorSettings().aggregator_batch_size
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ("raw-consume", "raw-insert", *p.aggregator_runs)}
        for repeat in range(p.repeat):
            for name in runs:
                self.say(f"[{repeat + 1}/{p.repeat}] aggregator: {name} ({total:,} events)")
                with tempfile.TemporaryDirectory(dir=self.workdir) as tmp, \
                        aggregator_bench.infrastructure(Path(tmp)) as (broker, clickhouse):  # fmt: skip
                    if name == "raw-insert":
                        result = ceilings.raw_insert(clickhouse, [v for _, v in values], batch_size)
                    else:
                        aggregator_bench.fill(broker.bootstrap, values)
                        if name == "raw-consume":
                            result = ceilings.raw_consume(broker.bootstrap, total, batch_size)
                        elif name == "raw":
                            result = aggregator_bench.measure_raw(broker.bootstrap, clickhouse, total, batch_size)
                        else:
                            engine, workers = name.split("-")
                            result = aggregator_bench.measure_aggregator(
                                broker.bootstrap,
                                clickhouse,
                                total,
                                engine,
                                int(workers),
                                Path(tmp),
                                check_folded=False,
                            )
                runs[name].append(result)
                self.done(f"{name}: {result['events_per_s']:,} events/s")
        self.result.setdefault("ceilings", {})
        self.result["ceilings"]["raw-consume"] = report.merge_runs(runs.pop("raw-consume"))
        self.result["ceilings"]["raw-insert"] = report.merge_runs(runs.pop("raw-insert"))
        self.result["aggregator"] = {name: report.merge_runs(r) for name, r in runs.items()}

    # --- the interaction consumer -----------------------------------------------------

    def interaction(self) -> None:
        p = self.plan
        changes = p.interaction_changes
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in interaction_bench.RUNS}
        for repeat in range(p.repeat):
            self.say(f"[{repeat + 1}/{p.repeat}] interaction: ceiling, pg-1, pg-2, sqlite-1 ({changes:,} changes)")
            stage = interaction_bench.interaction_stage(changes, max(1, min(p.customers, changes // 3)),
                                                        list(interaction_bench.RUNS))  # fmt: skip
            for name, figures in stage["runs"].items():
                runs[name].append(figures)
            self.done("interaction: " + ", ".join(f"{n} {f['changes_per_s']:,}/s" for n, f in stage["runs"].items()))
        self.result["parameters"]["interaction_changes"] = changes
        self.result["interaction"] = {name: report.merge_runs(r) for name, r in runs.items() if r}

    # --- stage 3 and 4 ---------------------------------------------------------------

    def pipeline(self) -> None:
        p = self.plan
        runs: dict[str, list[dict[str, Any]]] = {step.name: [] for step in p.steps}
        pipeline = Pipeline(self.workdir / "pipeline", p.customers, p.seed, self.say, p.database)
        self.say("pipeline: starting the stack")
        pipeline.start()
        try:
            self.done("pipeline: stack started")
            started = time.time()
            index = 0
            for repeat in range(p.repeat):
                for step in p.steps:
                    self.say(f"[{repeat + 1}/{p.repeat}] pipeline: {step.name}")
                    profiler = None
                    if repeat == 0 and step.rate == 5000 and step.shape == "batch" and p.profile_seconds:
                        profiler = Profiler(pipeline, self.workdir, p.profile_seconds, delay=step.warmup)
                    figures = pipeline.run_step(step, index)
                    if profiler is not None:
                        self.result["profiles"] = profiler.collect()
                    index += 1
                    runs[step.name].append(figures)
                    e = figures["end_to_end"]
                    self.done(f"{step.name}: accepted {figures['collector']['accepted_events_per_s']:,.0f}/s, HTTP p99 "
                              f"{figures['http']['p99_ms']} ms, → profile p99 {e['profile_p99_ms']} ms, → email p99 "
                              f"{e['email_p99_ms']} ms")  # fmt: skip
            self.result["pipeline"] = {
                "steps": [report.merge_runs(runs[step.name]) for step in p.steps],
                "memory": pipeline.memory(since=started),
                "series": pipeline.series(since=started),
            }
            if p.soak_seconds:
                self.soak(pipeline, index)
        finally:
            pipeline.stop()

    # --- the console's pages ----------------------------------------------------------

    def console(self) -> None:
        p = self.plan
        size = p.console_size
        self.say(f"console: {size.customers:,} customers, {size.events:,} events ({p.database})")
        result = console_bench.stage(size, p.database, say=self.say)
        self.result["console"] = result
        self.result["parameters"]["console"] = {"customers": size.customers, "events": size.events}
        slowest = "–" if result["slowest_p95_ms"] is None else f"{result['slowest_p95_ms']:,.0f} ms"
        verdict = "passed" if result["passed"] else "FAILED"
        self.done(f"console: {len(result['measured'])} URLs, slowest p95 {slowest}, {verdict}")

    # --- the reports ------------------------------------------------------------------

    def reports(self) -> None:
        p = self.plan
        size = p.reports_size
        self.say(f"reports: {size.customers:,} customers, {size.events:,} events")
        result = reports_bench.stage(size, p.database, say=self.say)
        self.result["reports"] = result
        self.result["parameters"]["reports"] = {"customers": size.customers, "events": size.events}
        slowest = "–" if result["slowest_p95_ms"] is None else f"{result['slowest_p95_ms']:,.0f} ms"
        verdict = "passed" if result["passed"] else "FAILED"
        self.done(f"reports: {len(result['measured'])} cases, slowest p95 {slowest}, {verdict}")

    # --- the website assistant ----------------------------------------------------------

    def assistant(self) -> None:
        self.say("assistant: held-out questions, both matchers, the chat API")
        result = assistant_bench.stage(rounds=2, say=self.say)
        self.result["assistant"] = result
        verdict = "passed" if result["passed"] else "FAILED"
        self.done(f"assistant: {result['questions']} questions, {verdict}")

    def soak(self, pipeline: Pipeline, index: int) -> None:
        p = self.plan
        step = Step(p.soak_rate, p.soak_seconds, 10.0)
        self.say(f"soak: {p.soak_seconds:.0f} s at {p.soak_rate:,} events/s")
        started = time.time()
        figures = pipeline.run_step(step, index)
        self.result["soak"] = {"rate": p.soak_rate, "seconds": p.soak_seconds, "figures": figures,
                               "memory": pipeline.memory(since=started),
                               "series": pipeline.series(since=started)}  # fmt: skip
        self.done(f"soak: RSS growth {report.rss_growth(self.result['soak'])}")


class Profiler:
    """py-spy sampling the aggregator and the interaction service during a step's window."""

    def __init__(self, pipeline: Pipeline, workdir: Path, seconds: float, delay: float) -> None:
        self.outputs: dict[str, Path] = {}
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        pids = {name: process.pid for name, process in pipeline.processes().items()}
        for name in ("aggregator", "interaction", "collector"):
            path = workdir / f"py-spy-{name}.txt"
            self.outputs[name] = path
            argv = [
                "sh",
                "-c",
                f"sleep {delay:.1f} && exec {shlex.quote(py_spy)} record --pid {pids[name]} "
                f"--duration {seconds:.0f} --rate 50 --format raw --nonblocking --output {shlex.quote(str(path))}",
            ]
            self.processes.append((name, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))

    def collect(self, top: int = 12) -> dict[str, Any]:
        """Per process: the functions where the samples were (own time), largest first."""
        found: dict[str, Any] = {}
        for name, process in self.processes:
            _, err = process.communicate(timeout=120)
            path = self.outputs[name]
            if process.returncode != 0 or not path.exists():
                found[name] = {"error": err.decode(errors="replace")[-500:]}
                continue
            own: Counter[str] = Counter()
            samples = 0
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                samples += int(count)
                own[_short(stack.split(";")[-1])] += int(count)
            found[name] = {"samples": samples,
                           "top_own": [[f, round(n / samples, 3)] for f, n in own.most_common(top)]}  # fmt: skip
        return found


def _short(frame: str) -> str:
    """``function (path/to/module.py:line)`` → ``function (module.py)``."""
    function, _, where = frame.partition(" (")
    return f"{function} ({Path(where.rstrip(')').rsplit(':', 1)[0]).name})" if where else function


def findings(result: dict[str, Any]) -> list[str]:
    """What the figures say, in sentences: the bottleneck, and each missed aim with where the time goes."""
    found = []
    worst = report.bottleneck(report.ratios(result))
    if worst is not None and worst.value is not None:
        found.append(
            f"Furthest below its ceiling: {worst.stage} at {worst.value:.2f} × {worst.ceiling} ({worst.name})."
        )
    for aim in report.aims(result):
        if aim.met is False:
            figure = "nothing arrived" if aim.figure is None else f"{aim.figure:,.2f} {aim.unit}"
            found.append(f"Missed: {aim.name} ({figure}, target {aim.target}).")
    found += report.console_findings(result.get("console") or {})
    found += report.reports_findings(result.get("reports") or {})
    for name, profile in (result.get("profiles") or {}).items():
        if "top_own" in profile:
            top = ", ".join(f"{frame} {share:.0%}" for frame, share in profile["top_own"][:5])
            found.append(f"py-spy, {name} at 5k events/s ({profile['samples']} samples), most own time: {top}.")
    return found


def summary_table(result: dict[str, Any]) -> Table:
    table = Table(title="eCRM benchmark: stages against their ceilings and aims")
    for column in ("figure", "measured", "ceiling / target", "ratio", "aim"):
        table.add_column(column)
    for r in report.ratios(result):
        table.add_row(r.name, f"{r.stage_value:,.0f}", f"{r.ceiling_value:,.0f}", f"{r.value:.2f}" if r.value else "–",
                      "" if r.aim is None else f"≥ {r.aim}: {'met' if r.met else 'MISSED'}")  # fmt: skip
    for aim in report.aims(result):
        if aim.unit != "×":
            state = {True: "met", False: "MISSED", None: "not measured"}[aim.met]
            figure = "–" if aim.figure is None else f"{aim.figure:,.0f} {aim.unit}"
            table.add_row(aim.name, figure, aim.target, "", state)
    return table


STAGES = ("collector", "aggregator", "interaction", "pipeline", "console", "reports", "assistant")


@app.command()
def run(
    full: Annotated[
        bool, typer.Option("--full", help="3 repetitions, steps up to 20k events/s, 15-minute soak.")
    ] = False,
    customers: Annotated[int, typer.Option(help="Customers in the workload.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 42,
    repeat: Annotated[int | None, typer.Option(help="Repetitions of every measurement (quick 1, full 3).")] = None,
    soak: Annotated[float | None, typer.Option(help="Seconds of soak at --soak-rate (quick 0, full 900).")] = None,
    soak_rate: Annotated[
        int, typer.Option(help="Offered events/s of the soak (one the pipeline sustains here: lag stays bounded).")
    ] = 1000,
    stage: Annotated[
        list[str] | None, typer.Option(help=f"Only these stages (repeatable): {', '.join(STAGES)}.")
    ] = None,
    rates: Annotated[
        str | None, typer.Option(help="Offered events/s of the pipeline's batch steps, comma-separated.")
    ] = None,
    database: Annotated[
        str,
        typer.Option(
            help="The interaction service's database (pipeline, console, reports stages): postgres or sqlite."
        ),
    ] = "postgres",
    out: Annotated[Path, typer.Option(help="Where the report goes.")] = RESULTS,
) -> None:
    """Run the suite, print the summary and write the JSON, the Markdown and the plots."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop brokers and servers
    unknown = set(stage or ()) - set(STAGES)
    if unknown:
        raise typer.BadParameter(f"unknown stage(s): {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None and "collector" in (stage or STAGES):
        raise typer.BadParameter("wrk is not installed: make wrk (Debian/Ubuntu: apt-get install wrk)")
    offered = tuple(int(r) for r in rates.split(",") if r.strip()) if rates else None
    plan = Plan.make(full, customers, seed, repeat, soak, soak_rate, tuple(stage or STAGES), database, offered)
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "benchmark": "suite",
        "command": "python -m bench.suite " + " ".join(sys.argv[1:]),
        "started_at": started.isoformat(timespec="seconds"),
        "git": collector_bench.git_state(),
        "machine": collector_bench.machine() | {"cpus": os.cpu_count()},
        "parameters": {
            "customers": plan.customers,
            "zipf_s": plan.zipf_s,
            "seed": plan.seed,
            "repeat": plan.repeat,
            "full": full,
            "stages": list(plan.stages),
            "aggregator_events": plan.aggregator_events,
            "steps": [s.name for s in plan.steps],
            "soak_seconds": plan.soak_seconds,
            "database": plan.database,
        },
    }
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ecrm-suite-") as tmp, Progress(*columns, console=console) as progress:
        current = Run(plan, progress, Path(tmp))
        current.result = result
        batch_bodies, single_bodies, records = current.workload()
        if "collector" in plan.stages:
            current.collector(batch_bodies, single_bodies, records)
        if "aggregator" in plan.stages:
            current.aggregator(records)
        if "interaction" in plan.stages:
            current.interaction()
        if "pipeline" in plan.stages:
            current.pipeline()
        if "console" in plan.stages:
            current.console()
        if "reports" in plan.stages:
            current.reports()
        if "assistant" in plan.stages:
            current.assistant()
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["ratios"] = report.as_dicts(report.ratios(result))
    result["aims"] = report.as_dicts(report.aims(result))
    result["findings"] = findings(result)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"suite-{started.strftime('%Y%m%dT%H%M%SZ')}"
    written = plots.write_all(result, out, stem)
    (out / f"{stem}.json").write_bytes(
        orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
    )
    (out / f"{stem}.md").write_text(report.markdown(result, written))
    Console().print(summary_table(result))
    for line in result["findings"]:
        Console().print(f"- {line}")
    console.print(f"Written: {out / stem}.json, .md and {len(written)} plots")


if __name__ == "__main__":
    app()
