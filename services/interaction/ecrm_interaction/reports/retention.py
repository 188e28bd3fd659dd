"""Retention: customers in cohorts by the week or month they were first seen (or first
bought), and the share of each cohort that came back in each later period; the revenue of each
cohort over its periods (its lifetime value so far)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from pydantic import Field, field_validator

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
    as_datetime,
    in_segment,
    next_period,
    parse_period,
    period_label,
    periods,
    ratio,
)
from ecrm_schemas.catalog import CatalogEvent

NAME = "retention"
TITLE = "Retention"
DEFINITION = (
    "Each customer belongs to the cohort of the week or month of their first activity ever "
    "(anything they did: a visit, a click, an order, an answer; not the messages we sent them), or "
    "of their first order with cohorts by first purchase; the cohorts shown are those whose week "
    "or month starts in the date range. A customer is retained in period N when they were active "
    "(or did the return event chosen) in the Nth week or month after their cohort's, whatever "
    "they did in between; period 0 is the cohort itself, all its customers; a period that has not "
    "begun yet is left empty. Revenue per customer is the cohort's order "
    "revenue up to and including that period divided by the cohort's size (its lifetime value "
    "so far). Periods are calendar weeks (from Monday) or months, UTC."
)
ORDER = CatalogEvent.ORDER_COMPLETED.value


class Params(Filters):
    cohort: Literal["first_seen", "first_purchase"] = "first_seen"
    interval: Literal[Interval.WEEK, Interval.MONTH] = Interval.WEEK
    periods: int = Field(default=8, ge=1, le=52)
    """How many periods after the cohort's are shown."""
    returning: str = Field(default="any", min_length=1, max_length=200)
    """The event that counts as coming back: ``any`` (any event) or an event's name."""
    line: int | None = Field(default=None, ge=1, le=52, validate_default=True)
    """The period whose retention is drawn across cohorts (default: the last one shown)."""

    @field_validator("line")
    @classmethod
    def _line(cls, line: int | None, info: Any) -> int | None:
        shown = info.data.get("periods")
        if line is not None and shown is not None and line > shown:
            raise ValueError(f"must be one of the periods shown (1 to {shown})")
        return line


BITMAP = {Interval.WEEK: "weeks", Interval.MONTH: "months"}
BUSINESS_EVENTS = tuple(
    e.value
    for e in (
        CatalogEvent.ORDER_COMPLETED,
        CatalogEvent.ORDER_REFUNDED,
        CatalogEvent.EMAIL_OPENED,
        CatalogEvent.EMAIL_LINK_CLICKED,
        CatalogEvent.UNSUBSCRIBED,
        CatalogEvent.SURVEY_ANSWERED,
        CatalogEvent.NPS_ANSWERED,
    )
)
"""Return events read from ``business_events`` (the rest from ``events``)."""


def _activity(p: Params) -> str:
    """Each customer's active periods as a bitmap of their start's day number: every activity
    (``customer_activity``), or the periods in which they did the return event."""
    if p.returning == "any":
        return f"""
        SELECT {CUSTOMER} AS customer, groupBitmapMergeState(e.{BITMAP[p.interval]}) AS active
        FROM {{db}}.customer_activity AS e LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        GROUP BY customer"""
    table, condition = "{db}.business_events AS e FINAL", "e.event = {returning:String}"
    if p.returning not in BUSINESS_EVENTS:
        table = "{db}.events AS e"
        condition = ("if({returning:String} IN ('page', 'screen', 'identify'), e.type = {returning:String}, "
                     "e.type = 'track' AND e.event = {returning:String})")  # fmt: skip
    return f"""
        SELECT {CUSTOMER} AS customer, groupBitmapState(toUInt16({BUCKET[p.interval]}(e.timestamp))) AS active
        FROM {table} LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE {condition} AND e.timestamp >= {{first:DateTime64(3, 'UTC')}}
        GROUP BY customer"""


def _cohorts(p: Params) -> str:
    """Each customer whose cohort starts in the range, with the cohort's start (a Date)."""
    if p.cohort == "first_seen":
        firsts = f"""
        SELECT {CUSTOMER} AS customer, toDate(min(e.first_at)) AS first_day
        FROM {{db}}.customer_activity AS e LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        GROUP BY customer"""
    else:
        firsts = f"""
        SELECT {CUSTOMER} AS customer, toDate(min(e.timestamp)) AS first_day
        FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE e.event = '{ORDER}'
        GROUP BY customer"""
    return f"""
        SELECT customer, {BUCKET[p.interval]}(first_day) AS cohort FROM ({firsts})
        WHERE cohort >= toDate({{start:DateTime64(3, 'UTC')}}) AND cohort < toDate({{end:DateTime64(3, 'UTC')}})
          AND {in_segment()}"""


def _unit(p: Params) -> str:
    return "week" if p.interval is Interval.WEEK else "month"


def _parameters(p: Params) -> dict[str, Any]:
    first = periods(p.since, p.since, p.interval)[0]
    return p.bounds() | {"returning": p.returning, "first": first, "shown": p.periods}


def _retained(p: Params, n: str) -> str:
    """Whether the customer of ``c`` was active (``a``) ``n`` periods after their cohort's."""
    return f"bitmapContains(a.active, toUInt16(c.cohort + toInterval{_unit(p).capitalize()}({n})))"


def queries(p: Params) -> dict[str, Query]:
    unit = _unit(p)
    retained = f"""
    SELECT c.cohort AS cohort, n, count() AS customers
    FROM ({_cohorts(p)}) AS c INNER JOIN ({_activity(p)}) AS a ON a.customer = c.customer
    ARRAY JOIN range(1, {{shown:UInt16}} + 1) AS n
    WHERE {_retained(p, "n")}
    GROUP BY cohort, n"""
    revenue = f"""
    SELECT c.cohort AS cohort, dateDiff('{unit}', c.cohort, toDate({BUCKET[p.interval]}(o.timestamp))) AS n,
           sum(o.amount) AS revenue
    FROM ({_cohorts(p)}) AS c INNER JOIN (
        SELECT {CUSTOMER} AS customer, e.timestamp AS timestamp, e.amount AS amount
        FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE e.event = '{ORDER}' AND e.timestamp >= {{first:DateTime64(3, 'UTC')}}) AS o ON o.customer = c.customer
    WHERE n BETWEEN 0 AND {{shown:UInt16}}
    GROUP BY cohort, n"""
    # with the server's day: the periods that have not begun by then are unknown, not 0 %
    sizes = f"SELECT cohort, count() AS customers, today() AS today FROM ({_cohorts(p)}) GROUP BY cohort"
    parameters = _parameters(p)
    return {"retained": Query(retained, parameters), "sizes": Query(sizes, parameters),
            "revenue": Query(revenue, parameters)}  # fmt: skip


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    sizes = {period_label(r["cohort"], p.interval): int(r["customers"]) for r in results["sizes"]}
    retained: dict[str, dict[int, int]] = defaultdict(dict)
    for r in results["retained"]:
        retained[period_label(r["cohort"], p.interval)][int(r["n"])] = int(r["customers"])
    revenue: dict[str, dict[int, float]] = defaultdict(dict)
    for r in results["revenue"]:
        revenue[period_label(r["cohort"], p.interval)][int(r["n"])] = float(r["revenue"])
    today = as_datetime(results["sizes"][0]["today"]) if results["sizes"] else None
    rows = []
    for start in [s for s in periods(p.since, p.until, p.interval) if s.date() >= p.since]:
        label = period_label(start, p.interval)
        size = sizes.get(label, 0)
        row: dict[str, Any] = {"cohort": label, "customers": size, "cell": f"{label}/0", "cells": {}}
        running = revenue[label].get(0, 0.0)
        row["ltv0"] = ratio(running, size)
        later = start
        for n in range(1, p.periods + 1):
            later = next_period(later, p.interval)
            begun = today is None or later <= today
            row[f"p{n}"] = ratio(retained[label].get(n, 0), size) if begun else None
            row["cells"][f"p{n}"] = f"{label}/{n}"
            running += revenue[label].get(n, 0.0)
            row[f"ltv{n}"] = ratio(running, size) if begun else None
        row["revenue"] = round(running, 2)
        row["ltv"] = ratio(running, size)  # so far: to the last period begun
        rows.append(row)
    word = "Week" if p.interval is Interval.WEEK else "Month"
    columns = [Column(key="cohort", label="Cohort", kind="period"), Column(key="customers", label="Customers")]
    columns += [Column(key=f"p{n}", label=f"{word} {n}", kind="rate") for n in range(1, p.periods + 1)]
    columns += [Column(key="revenue", label="Revenue so far", kind="money"),
                Column(key="ltv", label="Revenue per customer so far", kind="money")]  # fmt: skip
    line = p.line or p.periods
    chart = Chart(
        kind="line", x=[r["cohort"] for r in rows], y="rate",
        series=[Series(label=f"{word} {line} retention", values=[r[f"p{line}"] for r in rows])],
    )  # fmt: skip
    total = sum(sizes.values())
    return Report(
        name=NAME, title=f"{TITLE} by {'first purchase' if p.cohort == 'first_purchase' else 'first seen'}",
        definition=DEFINITION, filters=p.echo(), columns=columns, rows=rows, chart=chart,
        summary={"customers": total, "line": line},
    )  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """A cohort's customers (``cohort/0``) or those of it retained in period N (``cohort/N``)."""
    cohort, _, n = cell.partition("/")
    if not n.isdigit() or int(n) > p.periods:
        raise DrillError(f"a cell of this report is cohort/period with a period of 0 to {p.periods}, not {cell!r}")
    parameters = _parameters(p) | {"cohort": parse_period(cohort, p.interval).date(), "n": int(n)}
    if int(n) == 0:
        sql = f"SELECT customer AS customer_id FROM ({_cohorts(p)}) WHERE cohort = {{cohort:Date}} ORDER BY customer"
    else:
        sql = f"""
        SELECT c.customer AS customer_id
        FROM ({_cohorts(p)}) AS c INNER JOIN ({_activity(p)}) AS a ON a.customer = c.customer
        WHERE c.cohort = {{cohort:Date}} AND {_retained(p, "{n:UInt16}")}
        ORDER BY customer_id"""
    return Query(sql + f" LIMIT {DRILL_LIMIT}", parameters)
