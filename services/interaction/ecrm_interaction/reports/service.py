"""Service: cases opened and resolved, how long they took to resolve and how many broke their
SLA, by priority or by cause."""

from __future__ import annotations

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
    period_label,
    periods,
    ratio,
)
from ecrm_schemas.catalog import CatalogEvent

NAME = "service"
TITLE = "Service"
DEFINITION = (
    "The cases opened in the range, by the priority they were opened with or by their cause (the "
    "rule that opened them, '(by hand)' for the others). Resolved: resolved since (at any time up "
    "to now); time to resolve is from opening to the first resolution, its median in hours. SLA "
    "breaches: cases that passed their SLA unresolved (escalated). The chart counts the cases "
    "opened and those resolved in each period, whenever they were opened."
)
OPENED, RESOLVED, ESCALATED = (
    CatalogEvent.CASE_OPENED.value,
    CatalogEvent.CASE_RESOLVED.value,
    CatalogEvent.CASE_ESCALATED.value,
)
BY_HAND = "(by hand)"


class Params(Filters):
    by: Literal["priority", "cause"] = "priority"
    interval: Literal[Interval.DAY, Interval.WEEK, Interval.MONTH] = Interval.DAY


def _cases() -> str:
    """One row per case opened in the range: its customer, priority, cause, resolution, escalation."""
    return f"""
    SELECT case_id, any(customer) AS customer, anyIf(priority, event = '{OPENED}') AS priority,
           if(anyIf(rule_id, event = '{OPENED}') = '', '{BY_HAND}', anyIf(rule_id, event = '{OPENED}')) AS cause,
           minIf(timestamp, event = '{OPENED}') AS opened_at, countIf(event = '{RESOLVED}') > 0 AS resolved,
           minIf(timestamp, event = '{RESOLVED}') AS resolved_at, countIf(event = '{ESCALATED}') > 0 AS breached
    FROM (
        SELECT e.case_id AS case_id, {CUSTOMER} AS customer, e.event AS event, e.priority AS priority,
               e.rule_id AS rule_id, e.timestamp AS timestamp
        FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE e.event IN ('{OPENED}', '{RESOLVED}', '{ESCALATED}') AND e.case_id != ''
          AND e.timestamp >= {{start:DateTime64(3, 'UTC')}})
    GROUP BY case_id
    HAVING countIf(event = '{OPENED}') > 0 AND opened_at < {{end:DateTime64(3, 'UTC')}} AND {in_segment()}"""


def queries(p: Params) -> dict[str, Query]:
    group = "if(priority = '', 'normal', priority)" if p.by == "priority" else "cause"
    groups = f"""
    SELECT {group} AS grp, count() AS opened, countIf(resolved) AS n_resolved, countIf(breached) AS n_breached,
           quantileExactInclusiveIf(0.5)(toUnixTimestamp64Milli(resolved_at) - toUnixTimestamp64Milli(opened_at), resolved) AS median_ms
    FROM ({_cases()}) GROUP BY grp ORDER BY opened DESC, grp"""
    flow = f"""
    SELECT {BUCKET[p.interval]}(e.timestamp) AS period, countIf(e.event = '{OPENED}') AS opened,
           countIf(e.event = '{RESOLVED}') AS resolved
    FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
    WHERE e.event IN ('{OPENED}', '{RESOLVED}') AND e.timestamp >= {{start:DateTime64(3, 'UTC')}}
      AND e.timestamp < {{end:DateTime64(3, 'UTC')}} AND {in_segment(CUSTOMER)}
    GROUP BY period"""
    return {"groups": Query(groups, p.bounds()), "flow": Query(flow, p.bounds())}


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    rows = []
    for r in results["groups"]:
        opened, resolved = int(r["opened"]), int(r["n_resolved"])
        rows.append({
            "group": r["grp"], "opened": opened, "resolved": resolved, "resolved_share": ratio(resolved, opened),
            "median_hours": float(r["median_ms"]) / 3_600_000 if resolved else None, "breached": int(r["n_breached"]),
            "breach_rate": ratio(int(r["n_breached"]), opened), "cell": f"{r['grp']}/opened",
            "cells": {"resolved": f"{r['grp']}/resolved", "breached": f"{r['grp']}/breached"},
        })  # fmt: skip
    flow = {period_label(r["period"], p.interval): r for r in results["flow"]}
    labels = [period_label(s, p.interval) for s in periods(p.since, p.until, p.interval)]
    chart = Chart(kind="line", x=labels, series=[
        Series(label="Opened", values=[float(flow.get(x, {}).get("opened", 0)) for x in labels]),
        Series(label="Resolved", values=[float(flow.get(x, {}).get("resolved", 0)) for x in labels]),
    ])  # fmt: skip
    columns = [
        Column(key="group", label="Priority" if p.by == "priority" else "Cause", kind="text"),
        Column(key="opened", label="Opened"), Column(key="resolved", label="Resolved"),
        Column(key="resolved_share", label="Resolved of opened", kind="rate"),
        Column(key="median_hours", label="Median hours to resolve", kind="number"),
        Column(key="breached", label="SLA breaches"), Column(key="breach_rate", label="Breached of opened", kind="rate"),
    ]  # fmt: skip
    summary = {k: sum(r[k] for r in rows) for k in ("opened", "resolved", "breached")}
    return Report(name=NAME, title=f"{TITLE} by {p.by}", definition=DEFINITION, filters=p.echo(), columns=columns,
                  rows=rows, chart=chart, summary=summary)  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers of one group's cases (``group/opened``, ``group/resolved``, ``group/breached``)."""
    group, _, what = cell.rpartition("/")
    wanted = {"opened": "1", "resolved": "resolved", "breached": "breached"}
    if what not in wanted or not group:
        raise DrillError(f"a cell of this report is group/opened, group/resolved or group/breached, not {cell!r}")
    column = "if(priority = '', 'normal', priority)" if p.by == "priority" else "cause"
    sql = f"""
    SELECT customer AS customer_id, groupArray(case_id) AS cases FROM ({_cases()})
    WHERE {column} = {{group:String}} AND {wanted[what]} GROUP BY customer ORDER BY customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, p.bounds() | {"group": group})
