"""Revenue: orders and their revenue per period, by segment (as the customer's membership was
when they ordered), by channel or by campaign; average order value and repeat purchases."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from pydantic import Field

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

NAME = "revenue"
TITLE = "Revenue"
DEFINITION = (
    "Revenue is the sum of the orders placed in the range (an order's revenue, or its total when "
    "it has no revenue); refunds are shown apart and not taken off. Average order value is "
    "revenue divided by orders. Repeat-purchase rate: of the customers who ordered in the range, "
    "the share who had placed two or more orders by its end (orders before the range count). By "
    "segment, an order counts for every segment the customer was a member of at the moment of "
    "the order (entries and exits as the segments recorded them), and orders of customers in "
    "none count as '(no segment)'. By channel: the order's utm_medium (else utm_source), "
    "'(direct)' without one; by campaign: its utm_campaign, '(none)' without one."
)
ORDER, REFUND = CatalogEvent.ORDER_COMPLETED.value, CatalogEvent.ORDER_REFUNDED.value
NO_SEGMENT, DIRECT, NO_CAMPAIGN, OTHER = "(no segment)", "(direct)", "(none)", "other"
SHOWN = 8
"""Groups with their own line in the chart (the rest add up in 'other')."""


class Params(Filters):
    interval: Literal[Interval.DAY, Interval.WEEK, Interval.MONTH] = Interval.DAY
    by: Literal["none", "segment", "channel", "campaign"] = "none"
    """What the rows are: one per group."""
    groups: int = Field(default=SHOWN, ge=1, le=20)


def _orders(event: str = ORDER) -> str:
    return f"""
    SELECT {CUSTOMER} AS customer, e.timestamp AS timestamp, e.amount AS amount, e.message_id AS message_id,
           multiIf(e.utm_medium != '', e.utm_medium, e.utm_source != '', e.utm_source, '{DIRECT}') AS channel,
           if(e.utm_campaign != '', e.utm_campaign, '{NO_CAMPAIGN}') AS campaign
    FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
    WHERE e.event = '{event}' AND e.timestamp >= {{start:DateTime64(3, 'UTC')}} AND e.timestamp < {{end:DateTime64(3, 'UTC')}}"""


def _grouped(p: Params) -> str:
    """The orders of the range with their group (an order once per segment it counts for)."""
    if p.by == "none":
        return f"SELECT *, '' AS grp FROM ({_orders()}) WHERE {in_segment()}"
    if p.by in ("channel", "campaign"):
        return f"SELECT *, {p.by} AS grp FROM ({_orders()}) WHERE {in_segment()}"
    spans = """
    SELECT segment_id, customer_id, at AS entered_at,
           leadInFrame(at, 1, toDateTime64('2200-01-01 00:00:00', 3, 'UTC')) OVER (
               PARTITION BY segment_id, customer_id ORDER BY at ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING
           ) AS left_at, change
    FROM (SELECT DISTINCT segment_id, customer_id, at, change FROM {db}.segment_changes)"""
    return f"""
    SELECT o.*, if(s.segment_id = '', '{NO_SEGMENT}', s.segment_id) AS grp
    FROM ({_orders()}) AS o LEFT JOIN (SELECT * FROM ({spans}) WHERE change = 'entered') AS s
        ON s.customer_id = o.customer AND o.timestamp >= s.entered_at AND o.timestamp < s.left_at
    WHERE {in_segment("o.customer")}"""


def queries(p: Params) -> dict[str, Query]:
    parameters = p.bounds()
    grouped = _grouped(p)
    # each group's totals and its revenue per period, in one scan (``whole`` marks the totals)
    groups = f"""
    SELECT {BUCKET[p.interval]}(timestamp) AS period, grp, sum(amount) AS revenue, count() AS orders,
           uniqExact(customer) AS customers, grouping(period) AS whole
    FROM ({grouped}) GROUP BY GROUPING SETS ((period, grp), (grp)) ORDER BY whole DESC, revenue DESC, grp"""
    overall = f"""
    SELECT sum(amount) AS revenue, count() AS orders, uniqExact(customer) AS customers,
           (SELECT sum(amount) FROM ({_orders(REFUND)}) WHERE {in_segment()}) AS refunded,
           (SELECT count() FROM (
                SELECT {CUSTOMER} AS customer, count() AS n
                FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
                WHERE e.event = '{ORDER}' AND e.timestamp < {{end:DateTime64(3, 'UTC')}}
                GROUP BY customer HAVING n >= 2)
            WHERE customer IN (SELECT customer FROM ({_orders()}) WHERE {in_segment()})) AS repeat_customers
    FROM ({_orders()}) WHERE {in_segment()}"""
    return {"groups": Query(groups, parameters), "overall": Query(overall, parameters)}


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    o = results["overall"][0] if results["overall"] else {}
    revenue, orders, customers = float(o.get("revenue") or 0), int(o.get("orders") or 0), int(o.get("customers") or 0)
    summary = {
        "revenue": round(revenue, 2), "orders": orders, "customers": customers,
        "average_order_value": ratio(revenue, orders), "refunded": round(float(o.get("refunded") or 0), 2),
        "repeat_purchase_rate": ratio(int(o.get("repeat_customers") or 0), customers),
    }  # fmt: skip
    labels = [period_label(s, p.interval) for s in periods(p.since, p.until, p.interval)]
    rows: list[dict[str, Any]] = []
    for r in (r for r in results["groups"] if r["whole"]):
        group_revenue, group_orders = float(r["revenue"]), int(r["orders"])
        rows.append({
            "group": r["grp"] or "all", "revenue": round(group_revenue, 2), "orders": group_orders,
            "customers": int(r["customers"]), "average_order_value": ratio(group_revenue, group_orders),
            "share": ratio(group_revenue, revenue) if p.by != "segment" else None, "cell": r["grp"] or "all",
        })  # fmt: skip
    shown = [r["group"] for r in rows[: p.groups]]
    per_period: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in (r for r in results["groups"] if not r["whole"]):
        name = r["grp"] or "all"
        per_period[name if name in shown else OTHER][period_label(r["period"], p.interval)] += float(r["revenue"])
    names = shown + ([OTHER] if OTHER in per_period else [])
    chart = Chart(kind="line", x=labels, y="money",
                  series=[Series(label=n, values=[round(per_period[n].get(x, 0.0), 2) for x in labels]) for n in names])  # fmt: skip
    columns = [
        Column(key="group", label={"none": "", "segment": "Segment", "channel": "Channel", "campaign": "Campaign"}[p.by]
               or "All orders", kind="text"),
        Column(key="revenue", label="Revenue", kind="money"), Column(key="orders", label="Orders"),
        Column(key="customers", label="Customers"),
        Column(key="average_order_value", label="Average order value", kind="money"),
    ]  # fmt: skip
    if p.by != "segment":
        columns.append(Column(key="share", label="Share of revenue", kind="rate"))
    return Report(name=NAME, title=TITLE if p.by == "none" else f"{TITLE} by {p.by}", definition=DEFINITION,
                  filters=p.echo(), columns=columns, rows=rows, chart=chart, summary=summary)  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers who ordered in one group (``cell``: the group, ``all`` without grouping)."""
    if p.by == "none" and cell != "all":
        raise DrillError(f"without grouping the one cell is 'all', not {cell!r}")
    sql = f"""
    SELECT customer AS customer_id, count() AS orders, sum(amount) AS revenue FROM ({_grouped(p)})
    WHERE {{group:String}} = 'all' OR grp = {{group:String}}
    GROUP BY customer ORDER BY revenue DESC, customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, p.bounds() | {"group": cell})
