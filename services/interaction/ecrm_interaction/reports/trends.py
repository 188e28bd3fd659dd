"""Trends: how often an event happened (or how many customers did it) per hour, day, week or
month, optionally broken down by one of its properties, a trait of the customer, or the
segments the customer is in."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from ecrm_interaction.reports.base import (
    BUCKET,
    CUSTOMER,
    DRILL_LIMIT,
    IN_RANGE,
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

NAME = "trends"
TITLE = "Trends"
DEFINITION = (
    "How many times the event happened in each period (or, measured in customers, how many "
    "different customers did it at least once in that period). A visitor's events before they "
    "signed in count for the customer they became. Broken down, each value is a line: the most "
    "frequent values have their own line and the rest add up in 'other'; events without the "
    "property (or customers without the trait) are '(none)'. By segment, a customer in two "
    "segments counts in both, and customers in none are '(no segment)'. Periods are UTC; weeks "
    "start on Monday."
)
OTHER, NONE, NO_SEGMENT = "other", "(none)", "(no segment)"
TYPES = ("page", "screen", "identify", "group", "alias")
"""Event names that are Segment call types rather than track events."""


class Params(Filters):
    event: str = Field(default=CatalogEvent.ORDER_COMPLETED.value, min_length=1, max_length=200)
    """A track event's name, or ``page``, ``screen``, ``identify``."""
    measure: Literal["events", "customers"] = "events"
    interval: Interval = Interval.DAY
    breakdown: Literal["none", "property", "trait", "segment"] = "none"
    key: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9_.$ -]+$", validate_default=True)
    """The property (``breakdown=property``) or trait (``breakdown=trait``) to break down by."""
    groups: int = Field(default=5, ge=1, le=20)
    """How many values have a line of their own; the rest are 'other'."""

    @field_validator("interval")
    @classmethod
    def _hours(cls, interval: Interval, info: ValidationInfo) -> Interval:
        since, until = info.data.get("since"), info.data.get("until")
        if interval is Interval.HOUR and since and until and (until - since).days > 31:
            raise ValueError("hours are shown for at most 31 days")
        return interval

    @field_validator("key")
    @classmethod
    def _key(cls, key: str | None, info: ValidationInfo) -> str | None:
        breakdown = info.data.get("breakdown")
        if breakdown in ("property", "trait") and not key:
            raise ValueError(f"a breakdown by {breakdown} needs the {breakdown}'s name")
        return key


def _event_condition() -> str:
    return "(if({event:String} IN {types:Array(String)}, e.type = {event:String}, e.type = 'track' AND e.event = {event:String}))"


def _needs_customers(p: Params) -> bool:
    return p.measure == "customers" or p.breakdown in ("trait", "segment") or bool(p.segment)


def _source(p: Params, customers: bool = True) -> str:
    """The events of the range with their group value and (``customers``) their customer: the
    identity links are joined only when the customer is needed (a count of events needs none)."""
    value = "''"
    if p.breakdown == "property":
        value = "if(startsWith(JSONExtractRaw(e.properties, {key:String}) AS raw, '\"'), JSONExtractString(raw), raw)"
    rows = f"""
        SELECT e.timestamp AS timestamp, e.message_id AS message_id, {CUSTOMER} AS customer, {value} AS value
        FROM {{db}}.events AS e LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE {_event_condition()} AND {IN_RANGE}"""
    if not customers:
        return f"""
        SELECT e.timestamp AS timestamp, e.message_id AS message_id, {value} AS value
        FROM {{db}}.events AS e WHERE {_event_condition()} AND {IN_RANGE}"""
    if p.breakdown == "trait":
        rows = f"""
        SELECT r.timestamp AS timestamp, r.message_id AS message_id, r.customer AS customer, t.value AS value
        FROM ({rows}) AS r LEFT ANY JOIN (
            SELECT customer_id, if(JSONType(traits, {{key:String}}) = 'String', JSONExtractString(traits, {{key:String}}),
                                   JSONExtractRaw(traits, {{key:String}})) AS value
            FROM {{db}}.customer_profiles) AS t ON t.customer_id = r.customer"""
    elif p.breakdown == "segment":
        rows = f"""
        SELECT r.timestamp AS timestamp, r.message_id AS message_id, r.customer AS customer,
               if(s.segment_id = '', '{NO_SEGMENT}', s.segment_id) AS value
        FROM ({rows}) AS r LEFT JOIN (SELECT customer_id, segment_id FROM {{db}}.segment_members) AS s
            ON s.customer_id = r.customer"""
    return f"SELECT * FROM ({rows}) WHERE {in_segment()}"


def _parameters(p: Params) -> dict[str, Any]:
    return p.bounds() | {"event": p.event, "types": list(TYPES), "key": p.key or ""}


def queries(p: Params) -> dict[str, Query]:
    # an event redelivered in another insert block is stored twice until the parts merge; its
    # id's 64-bit hash counts it once, at half the cost of the id itself
    measure = "uniqExact(cityHash64(message_id))" if p.measure == "events" else "uniqExact(customer)"
    source = _source(p, _needs_customers(p))
    if p.breakdown == "none":
        sql = f"""
        SELECT {BUCKET[p.interval]}(timestamp) AS period, '' AS grp, {measure} AS n
        FROM ({source}) GROUP BY period ORDER BY period"""
        return {"series": Query(sql, _parameters(p))}
    group = f"if(value = '', '{NONE}', value)" if p.breakdown != "segment" else "value"
    # one query: the top values first (a scan), then every period's count and each group's
    # total in one more scan (grouping sets: ``whole`` marks the totals)
    sql = f"""
    SELECT {BUCKET[p.interval]}(timestamp) AS period, if({group} IN (
               SELECT {group} AS g FROM ({source}) GROUP BY g ORDER BY {measure} DESC, g LIMIT {{groups:UInt8}}
           ), {group}, '{OTHER}') AS grp, {measure} AS n, grouping(period) AS whole
    FROM ({source}) GROUP BY GROUPING SETS ((period, grp), (grp)) ORDER BY whole, period, grp"""
    return {"series": Query(sql, _parameters(p) | {"groups": p.groups})}


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    starts = periods(p.since, p.until, p.interval)
    labels = [period_label(s, p.interval) for s in starts]
    counted: dict[str, dict[str, int]] = defaultdict(dict)
    for found in results["series"]:
        if not found.get("whole"):
            counted[found["grp"]][period_label(found["period"], p.interval)] = int(found["n"])
    if p.breakdown == "none":
        order = [""]
        totals = {"": sum(counted[""].values())} if p.measure == "events" else {}
    else:
        totals = {found["grp"]: int(found["n"]) for found in results["series"] if found["whole"]}
        order = sorted(totals, key=lambda g: (g == OTHER, -totals[g], g))
    keys = {g: f"g{i}" for i, g in enumerate(order)}
    rows = []
    for label in labels:
        row: dict[str, Any] = {"period": label, "cell": label}
        for g in order:
            row[keys[g]] = counted[g].get(label, 0)
        if p.breakdown != "none":
            row["cells"] = {keys[g]: f"{label}/{g}" for g in order if g != OTHER}
        rows.append(row)
    what = "Customers" if p.measure == "customers" else "Events"
    columns = [Column(key="period", label="Period", kind="period")]
    columns += [Column(key=keys[g], label=g or what) for g in order]
    series = [Series(label=g or what, values=[float(r[keys[g]]) for r in rows]) for g in order]
    summary: dict[str, Any] = {"total": totals.get("") if p.breakdown == "none" else None, "groups": totals}
    if p.breakdown == "none" and p.measure == "customers":
        summary["total"] = None  # a customer active in two periods is one customer: not a sum of the periods
    return Report(
        name=NAME, title=f"{TITLE}: {p.event}", definition=DEFINITION, filters=p.echo(), columns=columns, rows=rows,
        chart=Chart(kind="line", x=labels, series=series), summary=summary,
    )  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers who did the event in one period (``cell``: the period, or ``period/value``)."""
    period, _, value = cell.partition("/")
    if p.breakdown == "none" and value:
        raise DrillError(f"this report has no breakdown: a cell is a period, not {cell!r}")
    if value == OTHER:
        raise DrillError("'other' gathers many values: drill into one of them, or show more groups")
    start = parse_period(period, p.interval)
    parameters = _parameters(p) | {"start": max(start, p.start), "end": min(next_period(start, p.interval), p.end)}
    value_condition = ""
    if value:
        group = f"if(value = '', '{NONE}', value)" if p.breakdown != "segment" else "value"
        value_condition = f"WHERE {group} = {{value:String}}"
        parameters["value"] = value
    sql = f"""
    SELECT customer AS customer_id, uniqExact(cityHash64(message_id)) AS events FROM ({_source(p)}) {value_condition}
    GROUP BY customer ORDER BY events DESC, customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, parameters)
