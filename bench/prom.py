"""Reading the services' own ``/metrics``: counters, gauges and histogram quantiles.

The benchmarks time what the services report about themselves (scraped before and after a
measured window), so watching costs the measured machine almost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Prometheus text exposition → ``{(name, labels): value}`` (comments skipped)."""
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, brace, rest = head.partition("{")
        labels: frozenset[tuple[str, str]] = frozenset()
        if brace:
            pairs = []
            for item in _split_labels(rest.rstrip("}")):
                key, _, raw = item.partition("=")
                pairs.append((key.strip(), raw.strip().strip('"')))
            labels = frozenset(pairs)
        try:
            samples[(name, labels)] = float(value)
        except ValueError:
            continue
    return samples


def _split_labels(body: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in body:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        items.append("".join(current))
    return [i for i in items if i.strip()]


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def buckets(before: Samples, after: Samples, name: str, **labels: str) -> dict[float, float]:
    """Cumulative bucket counts of histogram ``name`` gained between two scrapes, by upper bound."""
    wanted = set(labels.items())
    gained: dict[float, float] = {}
    for (n, ls), value in after.items():
        if n != name + "_bucket" or not wanted <= ls:
            continue
        bound = float(dict(ls)["le"].replace("+Inf", "inf"))
        gained[bound] = gained.get(bound, 0.0) + value - before.get((n, ls), 0.0)
    return dict(sorted(gained.items()))


def quantile(cumulative: Mapping[float, float], q: float) -> float:
    """The ``q`` quantile (0..1) of a histogram's cumulative buckets, linear inside a bucket as
    PromQL's ``histogram_quantile`` does; ``nan`` for an empty histogram. Past the last finite
    bound it answers that bound (the true value is only known to be larger)."""
    if not cumulative:
        return math.nan
    bounds = sorted(cumulative)
    count = cumulative[bounds[-1]]
    if count <= 0:
        return math.nan
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        if cumulative[bound] >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = cumulative[bound] - lower_count
            share = (rank - lower_count) / inside if inside else 0.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, cumulative[bound]
    return lower_bound


def mean(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """Mean of a histogram's observations between two scrapes (``nan`` for none)."""
    count = delta(before, after, name + "_count", **labels)
    return delta(before, after, name + "_sum", **labels) / count if count else math.nan
