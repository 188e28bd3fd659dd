"""RFM: customers on the 5 × 5 grid of recency and frequency scores as of the range's last day,
with each cell's name, customers and revenue, and how customers moved between the named cells
since the range's first day."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from ecrm_interaction.api.services.score_explanations import FREQUENCY_ORDERS, RECENCY_DAYS
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

NAME = "rfm"
TITLE = "RFM"
DEFINITION = (
    "Every customer with at least one order by the end of the range's last day, scored as of "
    "then: recency "
    + ", ".join(f"{5 - i} when the last order is at most {d} days old" for i, d in enumerate(RECENCY_DAYS))
    + ", else 1; frequency 1 plus one for each of "
    + ", ".join(str(n) for n in FREQUENCY_ORDERS)
    + " orders reached, the same scales as the customers' computed RFM traits. Each cell of the "
    "grid is named as the RFM segments are (frequency in the place of the frequency-monetary "
    "score). Revenue is the customers' order revenue up to that day. Moved: the cell each "
    "customer was in at the end of the range's first day ('no orders yet' if none) and the one "
    "they are in at its end."
)
CELLS: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("champions", (5,), (4, 5)),
    ("loyal", (3, 4), (4, 5)),
    ("cannot_lose_them", (1, 2), (5,)),
    ("at_risk", (1, 2), (3, 4)),
    ("potential_loyalist", (4, 5), (2, 3)),
    ("new_customers", (5,), (1,)),
    ("promising", (4,), (1,)),
    ("need_attention", (3,), (3,)),
    ("about_to_sleep", (3,), (1, 2)),
    ("hibernating", (2,), (1, 2)),
    ("lost", (1,), (1, 2)),
)
"""The aggregator's R × FM segment grid (``ecrm_aggregator.computed_traits.RFM_SEGMENTS``; a
drift test keeps them equal)."""
NO_ORDERS = "no_orders_yet"
ORDER = CatalogEvent.ORDER_COMPLETED.value


def cell_name(recency: int, frequency: int) -> str:
    return next(name for name, rs, fs in CELLS if recency in rs and frequency in fs)


class Params(Filters):
    pass


def _scores(moment: str, last: str, orders: str) -> tuple[str, str]:
    """The recency and frequency scores, as of ``moment``, of a customer whose last order was at
    ``last`` and who had placed ``orders``."""
    days = f"(toUnixTimestamp64Milli({moment}) - toUnixTimestamp64Milli({last})) / 86400000"
    recency = "5 - " + " - ".join(f"toUInt8({days} > {d})" for d in RECENCY_DAYS)
    frequency = "1 + " + " + ".join(f"toUInt8({orders} >= {n})" for n in FREQUENCY_ORDERS)
    return f"toUInt8({recency})", f"toUInt8({frequency})"


def _customers() -> str:
    """Each customer's orders, revenue and last order at the start (``_then``) and the end (``_now``)."""
    return f"""
    SELECT customer,
           countIf(timestamp < {{then:DateTime64(3, 'UTC')}}) AS orders_then,
           maxIf(timestamp, timestamp < {{then:DateTime64(3, 'UTC')}}) AS last_then,
           count() AS orders_now, max(timestamp) AS last_now, sum(amount) AS revenue
    FROM (
        SELECT {CUSTOMER} AS customer, e.timestamp AS timestamp, e.amount AS amount
        FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE e.event = '{ORDER}' AND e.timestamp < {{end:DateTime64(3, 'UTC')}})
    GROUP BY customer HAVING {in_segment()}"""


def _scored() -> str:
    r_now, f_now = _scores("{end:DateTime64(3, 'UTC')}", "last_now", "orders_now")
    r_then, f_then = _scores("{then:DateTime64(3, 'UTC')}", "last_then", "orders_then")
    return f"""
    SELECT customer, revenue, {r_now} AS r, {f_now} AS f,
           if(orders_then = 0, 0, {r_then}) AS r_then, if(orders_then = 0, 0, {f_then}) AS f_then
    FROM ({_customers()})"""


def _parameters(p: Filters) -> dict[str, Any]:
    return p.bounds() | {"then": p.start + timedelta(days=1)}


def queries(p: Params) -> dict[str, Query]:
    grid = f"SELECT r, f, count() AS customers, sum(revenue) AS revenue FROM ({_scored()}) GROUP BY r, f"
    moves = f"SELECT r_then, f_then, r, f, count() AS customers FROM ({_scored()}) GROUP BY r_then, f_then, r, f"
    return {"grid": Query(grid, _parameters(p)), "moves": Query(moves, _parameters(p))}


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    found = {(int(r["r"]), int(r["f"])): r for r in results["grid"]}
    total = sum(int(r["customers"]) for r in results["grid"])
    rows: list[dict[str, Any]] = []
    for recency in range(5, 0, -1):
        for frequency in range(5, 0, -1):
            hit = found.get((recency, frequency), {})
            customers = int(hit.get("customers", 0))
            rows.append({
                "recency": recency, "frequency": frequency, "cell_name": cell_name(recency, frequency),
                "customers": customers, "share": ratio(customers, total),
                "revenue": round(float(hit.get("revenue", 0.0)), 2), "cell": f"{recency}/{frequency}",
            })  # fmt: skip
    named: dict[str, dict[str, float]] = defaultdict(lambda: {"customers": 0, "revenue": 0.0})
    for row in rows:
        name: str = row["cell_name"]
        named[name]["customers"] += row["customers"]
        named[name]["revenue"] += row["revenue"]
    moved: dict[tuple[str, str], int] = defaultdict(int)
    for r in results["moves"]:
        before = NO_ORDERS if int(r["r_then"]) == 0 else cell_name(int(r["r_then"]), int(r["f_then"]))
        moved[(before, cell_name(int(r["r"]), int(r["f"])))] += int(r["customers"])
    moves = [{"from": a, "to": b, "customers": n} for (a, b), n in sorted(moved.items(), key=lambda kv: -kv[1])]
    names = [name for name, _, _ in CELLS]
    chart = Chart(
        kind="bar", x=names, series=[Series(label="Customers", values=[named[n]["customers"] for n in names])]
    )
    columns = [
        Column(key="recency", label="Recency", kind="number"), Column(key="frequency", label="Frequency", kind="number"),
        Column(key="cell_name", label="Cell", kind="text"), Column(key="customers", label="Customers"),
        Column(key="share", label="Share", kind="rate"), Column(key="revenue", label="Revenue", kind="money"),
    ]  # fmt: skip
    summary = {"customers": total, "cells": {n: dict(v) for n, v in named.items()}, "moves": moves,
               "moved_since": p.since.isoformat()}  # fmt: skip
    return Report(name=NAME, title=TITLE, definition=DEFINITION, filters=p.echo(), columns=columns, rows=rows,
                  chart=chart, summary=summary)  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers in one grid cell (``recency/frequency``) or named cell (``name``)."""
    names = [name for name, _, _ in CELLS]
    if cell in names:
        pairs = [(r, f) for r in range(1, 6) for f in range(1, 6) if cell_name(r, f) == cell]
    else:
        recency, _, frequency = cell.partition("/")
        if not (recency.isdigit() and frequency.isdigit() and 1 <= int(recency) <= 5 and 1 <= int(frequency) <= 5):
            raise DrillError(f"a cell of this report is recency/frequency (1 to 5) or a cell's name, not {cell!r}")
        pairs = [(int(recency), int(frequency))]
    wanted = " OR ".join(f"(r = {r} AND f = {f})" for r, f in pairs)
    sql = f"""SELECT customer AS customer_id, r AS recency, f AS frequency, revenue FROM ({_scored()})
    WHERE {wanted} ORDER BY revenue DESC, customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, _parameters(p))
