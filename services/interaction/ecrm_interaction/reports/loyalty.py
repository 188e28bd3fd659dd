"""Loyalty: points issued and taken back per period, the members of each tier at each period's
end, and the rewards issued."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from ecrm_interaction.reports.base import (
    BUCKET,
    CUSTOMER,
    DRILL_LIMIT,
    LINKS,
    Chart,
    Column,
    DrillError,
    Filters,
    Interval,
    Query,
    Report,
    Series,
    in_segment,
    next_period,
    parse_period,
    period_label,
    periods,
)
from ecrm_schemas.catalog import CatalogEvent

NAME = "loyalty"
TITLE = "Loyalty"
DEFINITION = (
    "Points issued: the points added to customers' balances in the period (purchases, events, "
    "rules); taken back: the points removed (refunds, redemptions, corrections). A tier's members "
    "at a period's end are the customers whose latest ledger entry by then put them in that tier. "
    "Rewards: those issued in the period, by kind."
)
POINTS, REWARD = CatalogEvent.LOYALTY_POINTS_AWARDED.value, CatalogEvent.REWARD_ISSUED.value


class Params(Filters):
    interval: Literal[Interval.DAY, Interval.WEEK, Interval.MONTH] = Interval.WEEK


def _entries(event: str) -> str:
    return f"""
    SELECT {CUSTOMER} AS customer, e.timestamp AS timestamp, e.amount AS amount, e.tier AS tier, e.kind AS kind
    FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
    WHERE e.event = '{event}'"""


def _ends(p: Params) -> list[Any]:
    return [min(next_period(s, p.interval), p.end) for s in periods(p.since, p.until, p.interval)]


def queries(p: Params) -> dict[str, Query]:
    in_range = "timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}"
    points = f"""
    SELECT {BUCKET[p.interval]}(timestamp) AS period, sumIf(amount, amount > 0) AS issued,
           -sumIf(amount, amount < 0) AS taken_back
    FROM ({_entries(POINTS)}) WHERE {in_range} AND {in_segment()} GROUP BY period"""
    rewards = f"""
    SELECT {BUCKET[p.interval]}(timestamp) AS period, kind, count() AS rewards
    FROM ({_entries(REWARD)}) WHERE {in_range} AND {in_segment()} GROUP BY period, kind"""
    tiers = f"""
    SELECT period_end, tier, count() AS members FROM (
        SELECT customer, period_end, argMax(tier, timestamp) AS tier
        FROM ({_entries(POINTS)}) ARRAY JOIN {{ends:Array(DateTime64(3, 'UTC'))}} AS period_end
        WHERE timestamp < period_end AND {in_segment()}
        GROUP BY customer, period_end)
    GROUP BY period_end, tier"""
    parameters = p.bounds() | {"ends": _ends(p)}
    return {
        "points": Query(points, parameters),
        "rewards": Query(rewards, parameters),
        "tiers": Query(tiers, parameters),
    }


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    starts = periods(p.since, p.until, p.interval)
    labels = [period_label(s, p.interval) for s in starts]
    points = {period_label(r["period"], p.interval): r for r in results["points"]}
    rewards: dict[str, dict[str, int]] = defaultdict(dict)
    for r in results["rewards"]:
        rewards[period_label(r["period"], p.interval)][r["kind"] or "(none)"] = int(r["rewards"])
    ends = {period_label(s, p.interval): end for s, end in zip(starts, _ends(p), strict=True)}
    tiers: dict[Any, dict[str, int]] = defaultdict(dict)
    for r in results["tiers"]:
        end = r["period_end"].replace(tzinfo=None) if hasattr(r["period_end"], "tzinfo") else r["period_end"]
        tiers[end][r["tier"] or "(none)"] = int(r["members"])
    names = sorted({t for found in tiers.values() for t in found})
    rows = []
    for label in labels:
        found = points.get(label, {})
        row: dict[str, Any] = {"period": label, "issued": int(found.get("issued", 0)),
                               "taken_back": int(found.get("taken_back", 0)),
                               "rewards": sum(rewards[label].values()), "rewards_by_kind": dict(rewards[label]),
                               "cell": f"{label}/issued"}  # fmt: skip
        for name in names:
            row[f"tier:{name}"] = tiers.get(ends[label], {}).get(name, 0)
        rows.append(row)
    columns = [
        Column(key="period", label="Period", kind="period"),
        Column(key="issued", label="Points issued"),
        Column(key="taken_back", label="Points taken back"),
        Column(key="rewards", label="Rewards issued"),
    ]
    columns += [Column(key=f"tier:{n}", label=f"{n.capitalize()} members at the end") for n in names]
    chart = Chart(kind="line", x=labels, series=[Series(label=f"{n.capitalize()} members", values=[float(r[f"tier:{n}"]) for r in rows]) for n in names]
                  + [Series(label="Points issued", values=[float(r["issued"]) for r in rows])])  # fmt: skip
    return Report(name=NAME, title=TITLE, definition=DEFINITION, filters=p.echo(), columns=columns, rows=rows,
                  chart=chart, summary={"issued": sum(r["issued"] for r in rows),
                                        "taken_back": sum(r["taken_back"] for r in rows), "tiers": names})  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers given points in one period (``period/issued``)."""
    label, _, what = cell.partition("/")
    if what != "issued":
        raise DrillError(f"a cell of this report is period/issued, not {cell!r}")
    start = parse_period(label, p.interval)
    sql = f"""
    SELECT customer AS customer_id, sumIf(amount, amount > 0) AS points FROM ({_entries(POINTS)})
    WHERE timestamp >= {{start:DateTime64(3, 'UTC')}} AND timestamp < {{end:DateTime64(3, 'UTC')}} AND amount > 0
      AND {in_segment()}
    GROUP BY customer ORDER BY points DESC, customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, p.bounds() | {"start": max(start, p.start), "end": min(next_period(start, p.interval), p.end)})
