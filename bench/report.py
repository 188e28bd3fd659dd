"""The suite's report: figures summarised over repetitions, each stage's ratio to its ceiling,
the project's aims checked, the bottleneck named, and the Markdown that goes beside the JSON.

Pure functions over the result dictionary that :mod:`bench.suite` builds, so that they can be
tested without running anything.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


def spread(values: Iterable[float | None]) -> dict[str, float] | None:
    """Median and range of the repetitions' values (``None`` when nothing was measured)."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present), "n": len(present)}


def median(summary: dict[str, float] | None) -> float | None:
    return None if summary is None else summary["median"]


@dataclass(frozen=True)
class Ratio:
    name: str
    stage: str
    ceiling: str
    stage_value: float | None
    ceiling_value: float | None
    aim: float | None = None
    bounds_a_stage: bool = True
    """False for a ratio between two ceilings (shown, but never named the bottleneck)."""

    @property
    def value(self) -> float | None:
        if not self.stage_value or not self.ceiling_value:
            return None
        return self.stage_value / self.ceiling_value

    @property
    def met(self) -> bool | None:
        if self.aim is None or self.value is None:
            return None
        return self.value >= self.aim


@dataclass(frozen=True)
class Aim:
    name: str
    figure: float | None
    target: str
    met: bool | None
    unit: str = ""


def _events_per_s(section: dict[str, Any], name: str) -> float | None:
    entry = section.get(name)
    return median(entry["events_per_s"]) if entry else None


def ratios(report: dict[str, Any]) -> list[Ratio]:
    """Every stage next to its ceiling, on medians."""
    interaction = report.get("interaction", {})
    collector, ceilings, aggregator = (
        report.get("collector", {}),
        report.get("ceilings", {}),
        report.get("aggregator", {}),
    )
    # The aims are issue 21's (ratios measured in the same run).
    found = [
        Ratio("collector batch path / raw produce loop", "collector-batch", "raw-produce",
              _events_per_s(collector, "collector-batch"), _events_per_s(collector, "raw-produce"), aim=0.3),
        Ratio("collector single-event path / no-op handler", "collector-single", "noop-single",
              _events_per_s(collector, "collector-single"), _events_per_s(collector, "noop-single"), aim=0.7),
        Ratio("collector batch path / no-op handler (batches)", "collector-batch", "noop-batch",
              _events_per_s(collector, "collector-batch"), _events_per_s(collector, "noop-batch")),
        Ratio("collector batch path / its validation alone", "collector-batch", "validation",
              _events_per_s(collector, "collector-batch"), _events_per_s(ceilings, "validation")),
        Ratio("aggregator, 1 process / plain consume → batch → insert loop", "kafka-1", "raw",
              _events_per_s(aggregator, "kafka-1"), _events_per_s(aggregator, "raw"), aim=0.6),
        Ratio("aggregator on faust-streaming / plain loop", "faust-1", "raw",
              _events_per_s(aggregator, "faust-1"), _events_per_s(aggregator, "raw")),
        Ratio("aggregator, 2 processes / 1 process", "kafka-2", "kafka-1",
              _events_per_s(aggregator, "kafka-2"), _events_per_s(aggregator, "kafka-1"), aim=1.8,
              bounds_a_stage=False),
        Ratio("interaction, 1 process on PostgreSQL / plain consume → bulk upsert loop", "pg-1", "ceiling",
              _events_per_s(interaction, "pg-1"), _events_per_s(interaction, "ceiling"), aim=0.3),
        Ratio("interaction, 1 process on SQLite / plain loop on PostgreSQL", "sqlite-1", "ceiling",
              _events_per_s(interaction, "sqlite-1"), _events_per_s(interaction, "ceiling")),
        Ratio("interaction, 2 processes / 1 process", "pg-2", "pg-1",
              _events_per_s(interaction, "pg-2"), _events_per_s(interaction, "pg-1"), aim=1.8, bounds_a_stage=False),
        Ratio("plain loop / raw consume loop", "raw", "raw-consume",
              _events_per_s(aggregator, "raw"), _events_per_s(ceilings, "raw-consume"), bounds_a_stage=False),
        Ratio("plain loop / raw ClickHouse insert loop", "raw", "raw-insert",
              _events_per_s(aggregator, "raw"), _events_per_s(ceilings, "raw-insert"), bounds_a_stage=False),
    ]  # fmt: skip
    return [r for r in found if r.stage_value is not None and r.ceiling_value is not None]


def bottleneck(found: list[Ratio]) -> Ratio | None:
    """The stage furthest below its ceiling (ratios between two ceilings left out)."""
    candidates = [r for r in found if r.bounds_a_stage and r.value is not None and r.stage != "faust-1"]
    return min(candidates, key=lambda r: r.value or 0.0, default=None)


def step_at(report: dict[str, Any], rate: int) -> dict[str, Any] | None:
    """The batch step offered at ``rate`` events/s (the first, when repeated steps were merged)."""
    for step in report.get("pipeline", {}).get("steps", []):
        if step["shape"] == "batch" and offered(step) == rate:
            return step
    return None


def offered(step: dict[str, Any]) -> float:
    """A step's offered events/s, merged over repetitions or not."""
    value = step["offered_events_per_s"]
    return float(value["median"] if isinstance(value, dict) else value)


def rss_growth(soak: dict[str, Any] | None) -> dict[str, float]:
    """MiB each process grew between the soak's first and last fifth (medians, so one spike does not count)."""
    if not soak:
        return {}
    growth = {}
    for name, series in soak["series"]["rss_mb"].items():
        fifth = max(1, len(series) // 5)
        growth[name] = round(statistics.median(series[-fifth:]) - statistics.median(series[:fifth]), 1)
    return growth


RSS_FLAT_MB = 25.0
"""Growth over the soak below which a process's RSS counts as flat."""
NOT_HELD_TO_RSS_AIM = frozenset({"kafka", "clickhouse"})
"""The embedded broker keeps every record in memory and chdb caches what it is given: they
grow with the data by design, and production runs neither."""


def aims(report: dict[str, Any]) -> list[Aim]:
    collector, aggregator = report.get("collector", {}), report.get("aggregator", {})
    batch = _events_per_s(collector, "collector-batch")
    per_process = _events_per_s(aggregator, "kafka-1")
    interaction = report.get("interaction", {})
    changes_pg, changes_sqlite = _events_per_s(interaction, "pg-1"), _events_per_s(interaction, "sqlite-1")
    at_5k = step_at(report, 5000)
    profile_p99 = median(at_5k["end_to_end"]["profile_p99_ms"]) if at_5k else None
    email_p99 = median(at_5k["end_to_end"]["email_p99_ms"]) if at_5k else None

    def under(figure: float | None, limit: float) -> bool | None:
        if at_5k is None:
            return None
        return figure is not None and figure < limit  # measured at 5k, yet nothing arrived: missed

    found = [
        Aim("collector batch path", batch, "≥ 150,000 events/s",
            None if batch is None else batch >= 150_000, "events/s"),
        Aim("aggregator, one process", per_process, "≥ 30,000 events/s",
            None if per_process is None else per_process >= 30_000, "events/s"),
        Aim("interaction, one process on PostgreSQL", changes_pg, "≥ 5,000 profile changes/s",
            None if changes_pg is None else changes_pg >= 5000, "changes/s"),
        Aim("interaction, one process on SQLite", changes_sqlite, "≥ 5,000 profile changes/s",
            None if changes_sqlite is None else changes_sqlite >= 5000, "changes/s"),
        Aim("event → profile p99 at 5k events/s", profile_p99, "< 2,000 ms", under(profile_p99, 2000), "ms"),
        Aim("event → email p99 at 5k events/s", email_p99, "< 5,000 ms", under(email_p99, 5000), "ms"),
    ]  # fmt: skip
    growth = {k: v for k, v in rss_growth(report.get("soak")).items() if k not in NOT_HELD_TO_RSS_AIM}
    if growth:
        worst = max(growth.values())
        found.append(
            Aim(
                "RSS over the soak (largest growth of our services)",
                worst,
                f"< {RSS_FLAT_MB:.0f} MiB",
                worst < RSS_FLAT_MB,
                "MiB",
            )
        )
    if console := report.get("console"):
        found.append(console_aim(console))
    if reports := report.get("reports"):
        found.append(reports_aim(reports))
    if assistant := report.get("assistant"):
        found += [Aim(f"assistant, {g['goal']}", g["value"], "", g["met"]) for g in assistant["goals"]]
    for ratio in ratios(report):
        if ratio.aim is not None:
            found.append(Aim(ratio.name, ratio.value, f"≥ {ratio.aim}", ratio.met, "×"))
    return found


CONSOLE_CEILING_MS = 300.0
"""The console's speed goal: every page rendered server-side in under this, at p95."""


def console_aim(console: dict[str, Any]) -> Aim:
    """The slowest console page's p95 against the goal; an unmeasured or failing page misses it too."""
    measured = console.get("measured") or []
    slowest = max((m["p95_ms"] for m in measured if "p95_ms" in m and not m.get("download")), default=None)
    broken = any("error" in m for m in measured) or bool(console.get("unfilled"))
    met = None if not measured else (slowest is not None and slowest < CONSOLE_CEILING_MS and not broken)
    name = (f"console, slowest page p95 ({console['customers']:,} customers, {console['events']:,} events)"
            + (", a page failed" if broken else ""))  # fmt: skip
    return Aim(name, slowest, f"< {CONSOLE_CEILING_MS:,.0f} ms", met, "ms")


def console_findings(console: dict[str, Any]) -> list[str]:
    """Each console page over the ceiling, answering an error, or left unmeasured, in a sentence."""
    found = []
    for m in console.get("measured") or []:
        if "error" in m:
            found.append(f"Console page {m['url']} {m['error']}.")
        elif not m["met"]:
            found.append(f"Console page {m['url']}: p95 {m['p95_ms']:,.0f} ms, over the {CONSOLE_CEILING_MS:,.0f} ms "
                         f"ceiling ({m['ratio_to_ceiling']:.2f} ×).")  # fmt: skip
    for page, why in (console.get("unfilled") or {}).items():
        found.append(f"Console page {page} not measured: {why}.")
    return found


def console_section(console: dict[str, Any] | None) -> list[str]:
    """The console pages' table (the console bench's report and the suite's)."""
    if not console:
        return []
    seconds = console["seed"]["seconds"]
    database = console["database"]
    lines = [
        "",
        f"## Console pages ({console['customers']:,} customers, {console['events']:,} events, {database})",
        "",
        f"Each page requested {console['warmup_per_page']} times unmeasured, then {console['requests_per_page']} "
        f"times one after another, signed in as an admin (request sent to response read, over loopback); "
        f"ceiling p95 < {CONSOLE_CEILING_MS:,.0f} ms. The store was seeded on {console['seed']['seeded_at']} in "
        f"{seconds.get('clickhouse', 0):,.0f} s (ClickHouse) + {seconds.get(database, 0):,.0f} s ({database})"
        + (", reused from the cache this run." if console["seed"]["reused"] else ".")
        + (
            f" Load average (1, 5, 15 min) before the pages {console['load_average']['before']}, after "
            f"{console['load_average']['after']} on {console.get('cpus') or os.cpu_count()} cores: anything else "
            "running on the machine shows in the tail."
            if "load_average" in console
            else ""
        ),
        "",
        "| page | p50 ms | p95 ms | max ms | p95 / ceiling | KiB | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in console["measured"]:
        if "error" in m:
            lines.append(f"| `{m['url']}` | | | | | | **error: {m['error']}** |")
            continue
        state = "a download: not held to it" if m.get("download") else "met" if m["met"] else "**over the ceiling**"
        lines.append(f"| `{m['url']}` | {m['p50_ms']:,.1f} | {m['p95_ms']:,.1f} | {m['max_ms']:,.1f} | "
                     f"{m['ratio_to_ceiling']:.2f} | {m['bytes'] / 1024:,.1f} | {state} |")  # fmt: skip
    for page, why in (console.get("unfilled") or {}).items():
        lines.append(f"| `{page}` | | | | | | **not measured: {why}** |")
    if broadcast := console.get("broadcast"):
        lines += ["", f"The broadcast pages open a draft to the segment `{broadcast['segment_id']}` "
                  f"({broadcast['members']:,} members, {broadcast['to_send']:,} to send after the contact policy), "
                  f"saved through `POST /v1/broadcasts` in {broadcast['save_ms']:,.0f} ms, its audience counted then "
                  "(a change, not a page: not held to the ceiling)."]  # fmt: skip
    if console.get("api"):
        lines += ["", "The API's GET routes on the same store (for information: what the pages call; not judged):",
                  "", "| route | p50 ms | p95 ms | max ms | p95 / ceiling | KiB |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for m in console["api"]:
            if "error" in m:
                lines.append(f"| `{m['url']}` | {m['error']} | | | | |")
            else:
                lines.append(f"| `{m['url']}` | {m['p50_ms']:,.1f} | {m['p95_ms']:,.1f} | {m['max_ms']:,.1f} | "
                             f"{m['ratio_to_ceiling']:.2f} | {m['bytes'] / 1024:,.1f} |")  # fmt: skip
    return lines


REPORTS_CEILING_MS = 1000.0
"""The reports' speed goal: every report answers in under this, at p95, on 10 million events."""


def reports_aim(reports: dict[str, Any]) -> Aim:
    """The slowest report case's p95 against the goal; a case that fails misses it too."""
    measured = reports.get("measured") or []
    slowest = max((m["p95_ms"] for m in measured if "p95_ms" in m), default=None)
    broken = any("error" in m for m in measured)
    met = None if not measured else (slowest is not None and slowest < REPORTS_CEILING_MS and not broken)
    name = (f"reports, slowest case p95 ({reports['customers']:,} customers, {reports['events']:,} events)"
            + (", a report failed" if broken else ""))  # fmt: skip
    return Aim(name, slowest, f"< {REPORTS_CEILING_MS:,.0f} ms", met, "ms")


def reports_findings(reports: dict[str, Any]) -> list[str]:
    """Each report case over the ceiling or failing, in a sentence naming its slowest query and
    what that query read (what to precompute)."""
    found = []
    for m in reports.get("measured") or []:
        if "error" in m:
            found.append(f"Report {m['report']} ({m['case']}) failed: {m['error']}.")
        elif not m["met"]:
            q = m["queries"][m["slowest_query"]]
            found.append(f"Report {m['report']} ({m['case']}): p95 {m['p95_ms']:,.0f} ms, over the "
                         f"{REPORTS_CEILING_MS:,.0f} ms ceiling ({m['ratio_to_bare']} × its bare scan); slowest "
                         f"query '{m['slowest_query']}' ({q['ms']:,.0f} ms alone) read {q['read_rows']:,} rows, "
                         f"{q['read_bytes'] / 2**20:,.1f} MiB.")  # fmt: skip
    return found


def reports_section(reports: dict[str, Any] | None) -> list[str]:
    """The reports' table (the reports bench's report and the suite's)."""
    if not reports:
        return []
    extras = reports.get("extras") or {}
    lines = [
        "",
        f"## Reports ({reports['customers']:,} customers, {reports.get('events_stored', reports['events']):,} events)",
        "",
        f"Each report case run {reports['warmup_per_case']} times unmeasured, then {reports['requests_per_case']} "
        "times one after another, end to end as the API runs it (its queries on ClickHouse over HTTP, then its "
        f"shape); ceiling p95 < {REPORTS_CEILING_MS:,.0f} ms. Beside it, the bare scan: the columns its queries "
        "read, over the key ranges they read, each table once, with nothing computed (timed the same way). "
        f"The store was seeded on {reports['seed']['seeded_at']} ({reports['seed']['age_days']} days before), with "
        f"{extras.get('rows', 0):,} extra business events (campaigns, cases, loyalty, refunds, surveys, messages). "
        + (f"Load average (1, 5, 15 min) before {reports['load_average']['before']}, after "
           f"{reports['load_average']['after']} on {reports.get('cpus') or os.cpu_count()} cores."
           if "load_average" in reports else ""),
        "",
        "| report | case | p50 ms | p95 ms | max ms | bare p95 ms | p95 / bare | rows read | MiB read | |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]  # fmt: skip
    for m in reports["measured"]:
        if "error" in m:
            lines.append(f"| {m['report']} | {m['case']} | | | | | | | | **error: {m['error']}** |")
            continue
        state = "met" if m["met"] else f"**missed** (slowest query: `{m['slowest_query']}`)"
        ratio = "–" if m["ratio_to_bare"] is None else f"{m['ratio_to_bare']:,.1f}"
        ratio += "*" if m["bare"].get("wider") else ""
        lines.append(f"| {m['report']} | {m['case']} | {m['p50_ms']:,.1f} | {m['p95_ms']:,.1f} | {m['max_ms']:,.1f} | "
                     f"{m['bare']['p95_ms']:,.1f} | {ratio} | {m['read_rows']:,} | {m['read_bytes'] / 2**20:,.1f} | "
                     f"{state} |")  # fmt: skip
    if any(m.get("bare", {}).get("wider") for m in reports["measured"]):
        lines += ["", "*: the bare scan read more rows than the report (a key condition it cannot repeat)."]
    findings = reports_findings(reports)
    if findings:
        lines += ["", *[f"- {f}" for f in findings]]
    return lines


# --- Markdown ---------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _s(summary: dict[str, float] | None, digits: int = 0) -> str:
    """``median (min–max)``, or the median alone for one repetition."""
    if summary is None:
        return "–"
    if summary["n"] == 1 or summary["min"] == summary["max"]:
        return _n(summary["median"], digits)
    return f"{_n(summary['median'], digits)} ({_n(summary['min'], digits)}–{_n(summary['max'], digits)})"


def _met(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def markdown(report: dict[str, Any], plots: list[str]) -> str:
    p, m = report["parameters"], report["machine"]
    lines = [
        f"# eCRM benchmark, {report['started_at']}",
        "",
        f"`{report['command']}` at commit `{report['git'].get('commit', '?')[:12]}`"
        + (" (uncommitted changes)" if report["git"].get("dirty") else "")
        + f"; {m.get('cpus')} cores ({m.get('cpu_model', '?')}), {m.get('memory_gb', '?')} GB, "
        f"Python {m.get('python')}; every component on this one machine.",
        f"Workload: {p['customers']:,} customers (Zipf s={p['zipf_s']}), seed {p['seed']}; "
        f"{p['repeat']} repetition(s): each figure is the median, with the range in brackets.",
        "",
        "## Stages against their ceilings",
        "",
        "| stage | events/s | ceiling | events/s | ratio | aim |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for r in ratios(report):
        aim = "" if r.aim is None else f"≥ {r.aim} ({_met(r.met)})"
        lines.append(f"| {r.stage} | {_n(r.stage_value)} | {r.ceiling} | {_n(r.ceiling_value)} | "
                     f"{_n(r.value, 2)} | {aim} |")  # fmt: skip
    worst = bottleneck(ratios(report))
    if worst is not None:
        lines += ["", f"**Furthest below its ceiling: {worst.stage}** ({worst.name}: {_n(worst.value, 2)})."]
    lines += ["", "## Aims", "", "| aim | measured | target | |", "| --- | ---: | --- | --- |"]
    for goal in aims(report):
        lines.append(f"| {goal.name} | {_n(goal.figure, 2 if goal.unit == '×' else 0)} {goal.unit} | {goal.target} | "
                     f"{_met(goal.met)} |")  # fmt: skip
    lines += _collector_section(report) + _aggregator_section(report) + _pipeline_section(report)
    lines += _memory_section(report) + console_section(report.get("console")) + reports_section(report.get("reports"))
    if report.get("assistant"):
        from bench.assistant_bench import markdown as assistant_markdown

        section = {
            "started_at": report.get("started_at", ""),
            "command": "bench.suite (assistant stage)",
            "cpus": report.get("cpus") or os.cpu_count(),
            "git": report.get("git", ""),
            **report["assistant"],
        }
        lines += ["", *assistant_markdown(section).replace("# Assistant benchmark", "## Assistant", 1).splitlines()]
    if report.get("findings"):
        lines += ["", "## Findings", ""] + [f"- {f}" for f in report["findings"]]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def _collector_section(report: dict[str, Any]) -> list[str]:
    collector = report.get("collector") or {}
    ceilings = report.get("ceilings") or {}
    if not collector and not ceilings:
        return []
    lines = ["", "## Collector and its ceilings (wrk, closed loop: capacity)", "",
             "| scenario | events/s | p50 ms | p99 ms | p99.9 ms | CPU s / 1k events | non-2xx | cores busy "
             "outside the benchmark | steal cores |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, entry in collector.items():
        machine = entry.get("machine") or {}
        lines.append(
            f"| {name} | {_s(entry['events_per_s'])} | {_s(entry.get('p50_ms'), 2)} | {_s(entry.get('p99_ms'), 2)} | "
            f"{_s(entry.get('p999_ms'), 2)} | {_s(entry.get('cpu_s_per_1k_events'), 3)} | "
            f"{_s(entry.get('non_2xx_rate'), 4)} | {_s(machine.get('outside_benchmark_cores'), 2)} | "
            f"{_s(machine.get('steal_cores'), 2)} |"
        )
    for name, entry in ceilings.items():
        lines.append(f"| {name} (ceiling) | {_s(entry['events_per_s'])} | | | | | | | |")
    return lines


def _aggregator_section(report: dict[str, Any]) -> list[str]:
    aggregator = report.get("aggregator") or {}
    if not aggregator:
        return []
    events = report["parameters"].get("aggregator_events", 0)
    lines = ["", f"## Aggregator ({events:,} collector-accepted events of the "
             "workload, fresh broker and ClickHouse for each run)", "",
             "| run | events/s |", "| --- | ---: |"]  # fmt: skip
    for name, entry in aggregator.items():
        lines.append(f"| {name} | {_s(entry['events_per_s'])} |")
    return lines


def _pipeline_section(report: dict[str, Any]) -> list[str]:
    steps = (report.get("pipeline") or {}).get("steps") or []
    if not steps:
        return []
    lines = [
        "",
        "## The whole pipeline under open-loop load",
        "",
        "Offered events/s in steps (send times scheduled, latency from the scheduled time); "
        "probes every 50 ms measure event → profile and event → email.",
        "",
        "| step | accepted/s | HTTP p50 / p99 / p99.9 ms | errors | 503 | 429 | produce→ack p50 / p99 ms "
        "| aggregator events/s | rows/insert | insert p50 / p99 ms | max lag | decisions/s | decision p50 / p99 ms "
        "| → profile p50 / p99 ms | → email p50 / p99 ms | collector CPU s / 1k |",
        "| --- " + "| ---: " * 15 + "|",
    ]
    for s in steps:
        h, c, a, i, e = s["http"], s["collector"], s["aggregator"], s["interaction"], s["end_to_end"]
        lines.append(
            f"| {s['step']} | {_s(c['accepted_events_per_s'])} | {_s(h['p50_ms'], 1)} / {_s(h['p99_ms'], 1)} / "
            f"{_s(h['p999_ms'], 1)} | {_s(h['error_rate'], 4)} | {_s(h['rate_503'], 4)} | {_s(h['rate_429'], 4)} | "
            f"{_s(c['produce_ack_p50_ms'], 1)} / {_s(c['produce_ack_p99_ms'], 1)} | {_s(a['events_per_s'])} | "
            f"{_s(a['rows_per_insert'])} | {_s(a['insert_p50_ms'], 1)} / {_s(a['insert_p99_ms'], 1)} | "
            f"{_s(a['lag_max'])} | {_s(i['decisions_per_s'], 1)} | {_s(i['decision_p50_ms'])} / "
            f"{_s(i['decision_p99_ms'])} | {_s(e['profile_p50_ms'])} / {_s(e['profile_p99_ms'])} | "
            f"{_s(e['email_p50_ms'])} / {_s(e['email_p99_ms'])} | {_s(c['cpu_s_per_1k_events'], 3)} |"
        )
    lines += ["", "Probes per step (sent / seen in a profile / emailed): " + "; ".join(
        f"{s['step']} {_s(s['end_to_end']['probes'])} / {_s(s['end_to_end']['profile_seen'])} / "
        f"{_s(s['end_to_end']['email_seen'])}" for s in steps)]  # fmt: skip
    return lines


def _memory_section(report: dict[str, Any]) -> list[str]:
    memory = (report.get("pipeline") or {}).get("memory") or {}
    if not memory:
        return []
    lines = [
        "",
        "## Memory (RSS, MiB, over the pipeline steps)",
        "",
        "| process | peak | steady |",
        "| --- | ---: | ---: |",
    ]
    for name, figures in memory.items():
        lines.append(f"| {name} | {_n(figures['peak_mb'], 1)} | {_n(figures['steady_mb'], 1)} |")
    growth = rss_growth(report.get("soak"))
    if growth:
        soak = report["soak"]
        lines += ["", f"Soak: {soak['seconds']:.0f} s at {soak['rate']:,} events/s; growth from the first to the "
                  "last fifth: " + ", ".join(f"{k} {v:+.1f} MiB" for k, v in growth.items()) + " (the embedded "
                  "broker and chdb are not held to the aim: they keep the data in memory)."]  # fmt: skip
    return lines


def as_dicts(found: list[Ratio] | list[Aim]) -> list[dict[str, Any]]:
    out = []
    for item in found:
        entry = asdict(item)
        if isinstance(item, Ratio):
            entry |= {"ratio": item.value, "met": item.met}
        out.append(entry)
    return out


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repetitions of one measurement → the same shape with every number a :func:`spread`."""
    first = runs[0]
    merged: dict[str, Any] = {}
    for key, value in first.items():
        values = [run.get(key) for run in runs]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            merged[key] = merge_runs(values)  # type: ignore[arg-type]
        elif isinstance(value, bool) or not isinstance(value, int | float | type(None)):
            merged[key] = value
        else:
            merged[key] = spread(v for v in values if isinstance(v, int | float))
    return merged
