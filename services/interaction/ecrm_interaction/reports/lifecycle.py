"""Lifecycle: in each period, how many active customers were new, returning or reactivated, and
how many of the period before's active customers lapsed."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
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
    parse_period,
    period_label,
    periods,
)

NAME = "lifecycle"
TITLE = "Lifecycle"
DEFINITION = (
    "A customer is active in a period when they did anything (a visit, a click, an order, an "
    "answer; not the messages we sent them). Each period's active customers are new (their first "
    "activity ever is in this period), returning (also active in the period before) or "
    "reactivated (active before, but not in the period before). Lapsed customers were active in "
    "the period before and not in this one; the chart shows them below zero. Periods are UTC "
    "days, calendar weeks from Monday, or months."
)
STATES = ("new", "returning", "reactivated", "lapsed")
BITMAP = {Interval.DAY: "days", Interval.WEEK: "weeks", Interval.MONTH: "months"}


class Params(Filters):
    interval: Literal[Interval.DAY, Interval.WEEK, Interval.MONTH] = Interval.WEEK


def _day(moment: Any) -> int:
    """A period's start as ClickHouse's day number (days since 1970-01-01)."""
    day = moment.date() if hasattr(moment, "date") else moment
    return (day - date(1970, 1, 1)).days


def _parameters(p: Params) -> dict[str, Any]:
    starts = periods(p.since, p.until, p.interval)
    previous = [_previous(s, p.interval) for s in starts]
    return p.bounds() | {"periods": [_day(s) for s in starts], "previous": [_day(s) for s in previous]}


def _previous(start: Any, interval: Interval) -> date:
    day = start.date()
    if interval is Interval.DAY:
        return date.fromordinal(day.toordinal() - 1)
    if interval is Interval.WEEK:
        return date.fromordinal(day.toordinal() - 7)
    return (date.fromordinal(day.toordinal() - 1)).replace(day=1)


def _states(p: Params) -> str:
    """One row per customer and period with a state: the period's day number and the state."""
    bitmap = BITMAP[p.interval]
    return f"""
    SELECT customer, period, multiIf(
               NOT bitmapContains(active, period), 'lapsed',
               toUInt16(toDate({BUCKET[p.interval]}(first_at))) = period, 'new',
               bitmapContains(active, previous), 'returning',
               'reactivated') AS state
    FROM (
        SELECT {CUSTOMER} AS customer, groupBitmapMergeState(e.{bitmap}) AS active, min(e.first_at) AS first_at
        FROM {{db}}.customer_activity AS e LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        GROUP BY customer
        HAVING {in_segment()}
    )
    ARRAY JOIN {{periods:Array(UInt16)}} AS period, {{previous:Array(UInt16)}} AS previous
    WHERE bitmapContains(active, period) OR bitmapContains(active, previous)"""


def queries(p: Params) -> dict[str, Query]:
    sql = f"SELECT period, state, count() AS customers FROM ({_states(p)}) GROUP BY period, state"
    return {"states": Query(sql, _parameters(p))}


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    counted: dict[int, dict[str, int]] = defaultdict(dict)
    for r in results["states"]:
        counted[int(r["period"])][r["state"]] = int(r["customers"])
    rows = []
    for start in periods(p.since, p.until, p.interval):
        label = period_label(start, p.interval)
        found = counted.get(_day(start), {})
        row: dict[str, Any] = {"period": label, **{s: found.get(s, 0) for s in STATES}}
        row["active"] = row["new"] + row["returning"] + row["reactivated"]
        row["cells"] = {s: f"{label}/{s}" for s in STATES}
        row["cell"] = f"{label}/active"
        rows.append(row)
    columns = [Column(key="period", label="Period", kind="period"), Column(key="active", label="Active")]
    columns += [Column(key=s, label=s.capitalize()) for s in STATES]
    series = [Series(label=s.capitalize(), values=[float(-r[s] if s == "lapsed" else r[s]) for r in rows])
              for s in STATES]  # fmt: skip
    return Report(
        name=NAME, title=TITLE, definition=DEFINITION, filters=p.echo(), columns=columns, rows=rows,
        chart=Chart(kind="bar", x=[r["period"] for r in rows], series=series),
    )  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers of one period in one state (``period/state``; ``active``: new, returning or
    reactivated)."""
    label, _, state = cell.partition("/")
    if state not in (*STATES, "active"):
        raise DrillError(f"a cell of this report is period/state with a state of {', '.join(STATES)} or active")
    day = _day(parse_period(label, p.interval))
    wanted = "state != 'lapsed'" if state == "active" else "state = {state:String}"
    sql = f"""
    SELECT customer AS customer_id, state FROM ({_states(p)})
    WHERE period = {{day:UInt16}} AND {wanted} ORDER BY customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, _parameters(p) | {"day": day, "state": state})
