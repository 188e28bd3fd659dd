"""Funnels: of the customers who did the first step, how many went on to each next step, in
order, within the conversion window; the drop-off at each step and the median time it took."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from pydantic import Field, field_validator

from ecrm_interaction.reports.base import (
    CUSTOMER,
    DRILL_LIMIT,
    LINKS,
    Chart,
    Column,
    DrillError,
    Filters,
    Query,
    Report,
    Series,
    in_segment,
    ratio,
)
from ecrm_schemas.catalog import CatalogEvent

NAME = "funnels"
TITLE = "Funnels"
DEFINITION = (
    "A customer enters the funnel with their first first-step event in the date range. Each next "
    "step counts when they did it after the step before and no later than the conversion window "
    "after entering (steps done out of order do not count; the first time each step happened is "
    "taken). Conversion is the share of the customers who entered that reached the step; "
    "drop-off is how many reached the step before but not this one; time to convert is the "
    "median time from the step before. By campaign, a customer belongs to the campaign "
    "(utm_campaign) of their entering event; by segment, to each segment they are in now."
)
MAX_STEPS = 6
ALL, NO_CAMPAIGN, NO_SEGMENT = "all", "(no campaign)", "(no segment)"
TYPES = ("page", "screen", "identify")


class Params(Filters):
    steps: list[str] = Field(
        default=[
            CatalogEvent.PRODUCT_VIEWED.value,
            CatalogEvent.PRODUCT_ADDED.value,
            CatalogEvent.ORDER_COMPLETED.value,
        ]
    )
    """The events in order (2 to 6; ``page``/``screen``/``identify`` name those calls). In a query
    string: ``steps=Product Viewed,Product Added,Order Completed``."""
    window_days: int = Field(default=7, ge=1, le=90)
    breakdown: Literal["none", "segment", "campaign"] = "none"

    @field_validator("steps", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",")]
        return value

    @field_validator("steps")
    @classmethod
    def _count(cls, steps: list[str]) -> list[str]:
        if not 2 <= len(steps) <= MAX_STEPS:
            raise ValueError(f"a funnel has 2 to {MAX_STEPS} steps, not {len(steps)}")
        if any(not s or len(s) > 200 for s in steps):
            raise ValueError("every step is an event name of 1 to 200 characters")
        return steps


def _matches(i: int) -> str:
    return (f"if({{step{i}:String}} IN {{types:Array(String)}}, e.type = {{step{i}:String}}, "
            f"e.type = 'track' AND e.event = {{step{i}:String}})")  # fmt: skip


def _per_customer(p: Params) -> str:
    """One row per customer who entered: the moment of each step reached (0: not reached), and
    their group."""
    n = len(p.steps)
    window = p.window_days * 86_400_000
    collect = ", ".join(f"groupArrayIf(ms, {_matches(i)}) AS a{i}" for i in range(n))
    campaign = ("argMinIf(e.utm_campaign, ms, "
                f"{_matches(0)} AND ms >= toUnixTimestamp64Milli({{start:DateTime64(3, 'UTC')}}))")  # fmt: skip
    reached = [
        "arrayMin(arrayFilter(x -> x >= toUnixTimestamp64Milli({start:DateTime64(3, 'UTC')}) "
        "AND x < toUnixTimestamp64Milli({end:DateTime64(3, 'UTC')}), a0)) AS t0"
    ]
    for i in range(1, n):
        after = ">" if p.steps[i] == p.steps[i - 1] else ">="
        reached.append(
            f"if(t{i - 1} = 0, 0, arrayMin(arrayFilter(x -> x {after} t{i - 1} AND x <= t0 + {window}, a{i}))) AS t{i}"
        )
    steps = " OR ".join(f"({_matches(i)})" for i in range(n))
    return f"""
    SELECT customer, campaign, {", ".join(reached)}
    FROM (
        SELECT {CUSTOMER} AS customer, {collect}, {campaign if p.breakdown == "campaign" else "''"} AS campaign
        FROM (SELECT *, utm_campaign, toUnixTimestamp64Milli(timestamp) AS ms FROM {{db}}.events) AS e
        LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE ({steps}) AND e.timestamp >= {{start:DateTime64(3, 'UTC')}}
          AND e.timestamp < {{end:DateTime64(3, 'UTC')}} + toIntervalDay({p.window_days})
        GROUP BY customer
    )
    WHERE notEmpty(a0) AND t0 > 0 AND {in_segment()}"""


def _grouped(p: Params) -> str:
    if p.breakdown == "campaign":
        return f"SELECT *, if(campaign = '', '{NO_CAMPAIGN}', campaign) AS grp FROM ({_per_customer(p)})"
    if p.breakdown == "segment":
        return f"""
        SELECT c.*, if(s.segment_id = '', '{NO_SEGMENT}', s.segment_id) AS grp
        FROM ({_per_customer(p)}) AS c
        LEFT JOIN (SELECT customer_id, segment_id FROM {{db}}.segment_members) AS s ON s.customer_id = c.customer"""
    return f"SELECT *, '{ALL}' AS grp FROM ({_per_customer(p)})"


def _parameters(p: Params) -> dict[str, Any]:
    return p.bounds() | {"types": list(TYPES)} | {f"step{i}": s for i, s in enumerate(p.steps)}


def queries(p: Params) -> dict[str, Query]:
    n = len(p.steps)
    counts = ", ".join(f"countIf(t{i} > 0) AS reached{i}" for i in range(n))
    medians = ", ".join(f"quantileExactInclusiveIf(0.5)(t{i} - t{i - 1}, t{i} > 0) AS median{i}" for i in range(1, n))
    sql = f"SELECT grp, {counts}, {medians} FROM ({_grouped(p)}) GROUP BY grp ORDER BY reached0 DESC, grp"
    return {"steps": Query(sql, _parameters(p))}


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    rows: list[dict[str, Any]] = []
    reached_by_group: dict[str, list[float | None]] = defaultdict(list)
    groups = [r["grp"] for r in results["steps"]]
    for found in results["steps"]:
        entered = int(found["reached0"])
        for i, event in enumerate(p.steps):
            reached = int(found[f"reached{i}"])
            before = int(found[f"reached{i - 1}"]) if i else reached
            median = found.get(f"median{i}") if i and reached else None
            rows.append({
                "group": found["grp"], "step": i + 1, "event": event, "customers": reached,
                "conversion": ratio(reached, entered), "from_previous": ratio(reached, before),
                "dropped": before - reached, "median_seconds": None if median is None else float(median) / 1000,
                "cell": f"{i + 1}/{found['grp']}",
            })  # fmt: skip
            reached_by_group[found["grp"]].append(float(reached))
    columns = [
        Column(key="group", label="Group", kind="text"), Column(key="step", label="Step", kind="number"),
        Column(key="event", label="Event", kind="text"), Column(key="customers", label="Customers"),
        Column(key="conversion", label="Conversion", kind="rate"),
        Column(key="from_previous", label="From previous step", kind="rate"),
        Column(key="dropped", label="Dropped off"), Column(key="median_seconds", label="Median time", kind="seconds"),
    ]  # fmt: skip
    if p.breakdown == "none":
        columns = columns[1:]
    x = [f"{i + 1}. {s}" for i, s in enumerate(p.steps)]
    series = [Series(label=g, values=reached_by_group[g]) for g in groups]
    overall = next((r for r in results["steps"] if r["grp"] == ALL), None)
    summary = {} if overall is None else {
        "entered": int(overall["reached0"]), "converted": int(overall[f"reached{len(p.steps) - 1}"]),
        "conversion": ratio(int(overall[f"reached{len(p.steps) - 1}"]), int(overall["reached0"])),
    }  # fmt: skip
    return Report(
        name=NAME, title=f"{TITLE}: {' → '.join(p.steps)}", definition=DEFINITION, filters=p.echo(), columns=columns,
        rows=rows, chart=Chart(kind="bar", x=x, series=series), summary=summary,
    )  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers who reached step ``N`` (``cell``: ``N/group``), with when they entered."""
    step, _, group = cell.partition("/")
    if not step.isdigit() or not 1 <= int(step) <= len(p.steps) or not group:
        raise DrillError(f"a cell of this funnel is step/group with a step of 1 to {len(p.steps)}, not {cell!r}")
    i = int(step) - 1
    sql = f"""
    SELECT customer AS customer_id, fromUnixTimestamp64Milli(t0) AS entered_at, fromUnixTimestamp64Milli(t{i}) AS reached_at
    FROM ({_grouped(p)}) WHERE t{i} > 0 AND grp = {{group:String}} ORDER BY t0, customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, _parameters(p) | {"group": group})
