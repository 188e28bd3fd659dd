"""PNG plots of a suite report: throughput per step, latency percentiles per step, consumer
lag over time, RSS over time, and each stage beside its ceiling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from bench.report import median, offered, ratios


def _m(summary: dict[str, float] | None) -> float:
    value = median(summary)
    return float("nan") if value is None else value


def write_all(report: dict[str, Any], out: Path, stem: str) -> list[str]:
    """Write every plot the report has data for; returns the file names (relative to ``out``)."""
    written = []
    for name, draw in (("throughput", _throughput), ("latency", _latency), ("lag", _lag), ("rss", _rss),
                       ("ceilings", _ceilings)):  # fmt: skip
        figure = draw(report)
        if figure is None:
            continue
        path = out / f"{stem}-{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path.name)
    return written


def _steps(report: dict[str, Any]) -> list[dict[str, Any]]:
    return (report.get("pipeline") or {}).get("steps") or []


def _throughput(report: dict[str, Any]):  # type: ignore[no-untyped-def]
    steps = _steps(report)
    if not steps:
        return None
    figure, axes = plt.subplots(figsize=(8, 4))
    x = range(len(steps))
    width = 0.27
    rates = [offered(s) for s in steps]
    accepted = [_m(s["collector"]["accepted_events_per_s"]) for s in steps]
    folded = [_m(s["aggregator"]["events_per_s"]) for s in steps]
    axes.bar([i - width for i in x], rates, width, label="offered")
    axes.bar(list(x), accepted, width, label="collector accepted")
    axes.bar([i + width for i in x], folded, width, label="aggregator consumed")
    axes.set_xticks(list(x), [s["step"] for s in steps])
    axes.set_ylabel("events/s")
    axes.set_title("Throughput per offered step")
    axes.legend()
    return figure


def _latency(report: dict[str, Any]):  # type: ignore[no-untyped-def]
    steps = _steps(report)
    if not steps:
        return None
    figure, axes = plt.subplots(figsize=(8, 4.5))
    names = [s["step"] for s in steps]
    series = {
        "HTTP p50": [_m(s["http"]["p50_ms"]) for s in steps],
        "HTTP p99": [_m(s["http"]["p99_ms"]) for s in steps],
        "HTTP p99.9": [_m(s["http"]["p999_ms"]) for s in steps],
        "→ profile p50": [_m(s["end_to_end"]["profile_p50_ms"]) for s in steps],
        "→ profile p99": [_m(s["end_to_end"]["profile_p99_ms"]) for s in steps],
        "→ email p50": [_m(s["end_to_end"]["email_p50_ms"]) for s in steps],
        "→ email p99": [_m(s["end_to_end"]["email_p99_ms"]) for s in steps],
    }
    for label, values in series.items():
        axes.plot(names, values, marker="o", label=label)
    axes.set_yscale("log")
    axes.set_ylabel("ms (log)")
    axes.set_title("Latency percentiles per offered step")
    axes.legend(fontsize="small", ncol=2)
    return figure


def _over_time(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    if (report.get("pipeline") or {}).get("series"):
        found.append(("steps", report["pipeline"]["series"]))
    if (report.get("soak") or {}).get("series"):
        found.append(("soak", report["soak"]["series"]))
    return found


def _lag(report: dict[str, Any]):  # type: ignore[no-untyped-def]
    found = _over_time(report)
    if not found:
        return None
    figure, axes = plt.subplots(figsize=(8, 3.5))
    for label, series in found:
        axes.plot(series["t"], series["lag"], label=label)
    axes.set_xlabel("s")
    axes.set_ylabel("events not yet processed")
    axes.set_title("Aggregator consumer lag over time")
    axes.legend()
    return figure


def _rss(report: dict[str, Any]):  # type: ignore[no-untyped-def]
    found = _over_time(report)
    if not found:
        return None
    figure, panels = plt.subplots(1, len(found), figsize=(8 * len(found), 4), squeeze=False)
    for axes, (label, series) in zip(panels[0], found, strict=True):
        for name, values in series["rss_mb"].items():
            axes.plot(series["t"], values, label=name)
        axes.set_xlabel("s")
        axes.set_ylabel("RSS, MiB")
        axes.set_title(f"RSS over time ({label})")
        axes.legend(fontsize="small")
    return figure


def _ceilings(report: dict[str, Any]):  # type: ignore[no-untyped-def]
    found = ratios(report)
    if not found:
        return None
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(found) + 1))
    labels = [r.name for r in found]
    axes.barh(labels, [r.ceiling_value or 0 for r in found], color="#cccccc", label="ceiling")
    axes.barh(labels, [r.stage_value or 0 for r in found], height=0.5, label="stage")
    axes.set_xscale("log")
    axes.set_xlabel("events/s (log)")
    axes.invert_yaxis()
    axes.set_title("Each stage beside its ceiling")
    axes.legend()
    return figure
