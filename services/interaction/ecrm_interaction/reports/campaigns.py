"""Campaign and rule performance: what became of the emails sent in the range, per rule,
broadcast (campaign), A/B variant or link, counted as cascading states per message, and the
orders their clicks led to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

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

NAME = "campaigns"
TITLE = "Campaigns and rules"
DEFINITION = (
    "Every email whose first event (usually Email Sent) is in the range, with everything that "
    "happened to it since. Each message counts once per state, and the states cascade: a click "
    "proves an open, an open proves a delivery, so a message clicked without a recorded open "
    "counts as opened and delivered, and no rate exceeds 100 %. Opens are people's: machine "
    "opens (Apple's privacy prefetch, link scanners) are shown apart and counted as delivered, "
    "not opened. Bounced: a hard or soft bounce and no delivery. Click-to-open: clicked of opened. "
    "A conversion is an order placed within the attribution window after a click on the "
    "message; each order counts for one message: the one clicked last before it (last touch) or "
    "first within the window (first touch), and its revenue is attributed to that message."
)
EMAIL_EVENTS = tuple(
    e.value
    for e in (  # the events email_messages (migration 0010) is made of
        CatalogEvent.EMAIL_SENT,
        CatalogEvent.EMAIL_DELIVERED,
        CatalogEvent.EMAIL_OPENED,
        CatalogEvent.EMAIL_LINK_CLICKED,
        CatalogEvent.EMAIL_BOUNCED,
        CatalogEvent.EMAIL_MARKED_AS_SPAM,
        CatalogEvent.UNSUBSCRIBED,
    )
)
ORDER, CLICK = CatalogEvent.ORDER_COMPLETED.value, CatalogEvent.EMAIL_LINK_CLICKED.value
UNTAGGED = "(untagged)"
STATES = ("sent", "delivered", "opened", "clicked", "bounced_hard", "bounced_soft", "unsubscribed", "complained",
          "machine_opened")  # fmt: skip


class Params(Filters):
    by: Literal["source", "variant", "link"] = "source"
    """Rows per rule or campaign (``source``), per source and A/B variant, or per link."""
    window_days: int = Field(default=7, ge=1, le=30)
    """How long after a click an order counts as the message's conversion."""
    attribution: Literal["last_touch", "first_touch"] = "last_touch"


def _source() -> str:
    return (f"multiIf(rule_id != '', concat('rule:', rule_id), campaign_id != '', concat('campaign:', campaign_id), "
            f"'{UNTAGGED}')")  # fmt: skip


def _messages() -> str:
    """One row per message first seen in the range: its source, variant, customer and states."""
    return f"""
    SELECT email_id, {_source()} AS source, variant, customer,
           delivered OR opened_any OR clicked AS delivered, human_open OR clicked AS opened, clicked,
           hard AND NOT (delivered OR opened_any OR clicked) AS bounced_hard,
           soft AND NOT hard AND NOT (delivered OR opened_any OR clicked) AS bounced_soft,
           unsubscribed, complained, opened_any AND NOT (human_open OR clicked) AS machine_opened
    FROM (
        SELECT m.email_id AS email_id, max(m.rule_id) AS rule_id, max(m.campaign_id) AS campaign_id,
               max(m.variant) AS variant, any({CUSTOMER.replace("e.customer_id", "m.customer_id")}) AS customer,
               min(m.first_at) AS first_at, max(m.delivered) AS delivered, max(m.opened_any) AS opened_any,
               max(m.human_open) AS human_open, max(m.clicked) AS clicked, max(m.hard) AS hard, max(m.soft) AS soft,
               max(m.unsubscribed) AS unsubscribed, max(m.complained) AS complained
        FROM {{db}}.email_messages AS m LEFT ANY JOIN {LINKS} AS l ON m.customer_id = l.anonymous_id
        GROUP BY email_id
        HAVING first_at >= {{start:DateTime64(3, 'UTC')}} AND first_at < {{end:DateTime64(3, 'UTC')}}
    )
    WHERE {in_segment()}"""


def _credited(p: Params) -> str:
    """One row per order placed since the range's start and credited to a message (any message:
    an order whose last click was on an older email is that email's): the message, the revenue."""
    clicks = f"""
        SELECT {CUSTOMER} AS customer, e.timestamp AS clicked_at, e.email_id AS email_id
        FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE e.event = '{CLICK}' AND e.timestamp >= {{start:DateTime64(3, 'UTC')}} - toIntervalDay({p.window_days})"""
    orders = f"""
        SELECT {CUSTOMER} AS customer, e.timestamp AS ordered_at, e.message_id AS order_event, e.amount AS amount
        FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE e.event = '{ORDER}' AND e.timestamp >= {{start:DateTime64(3, 'UTC')}}"""
    # ASOF: the last click at or before the order, or the first at or after the window's start.
    if p.attribution == "last_touch":
        on = "k.customer = o.customer AND o.ordered_at >= k.clicked_at"
    else:
        on = f"k.customer = o.customer AND o.ordered_at - toIntervalDay({p.window_days}) <= k.clicked_at"
    return f"""
    SELECT o.order_event AS order_event, k.email_id AS email_id, o.amount AS amount
    FROM ({orders}) AS o ASOF INNER JOIN ({clicks}) AS k ON {on}
    WHERE k.clicked_at <= o.ordered_at AND o.ordered_at <= k.clicked_at + toIntervalDay({p.window_days})"""


def _group(p: Params) -> str:
    return {"source": "source", "variant": "concat(source, ' / ', if(variant = '', '(none)', variant))",
            "link": "link"}[p.by]  # fmt: skip


def queries(p: Params) -> dict[str, Query]:
    parameters = p.bounds()
    if p.by == "link":
        sql = f"""
        SELECT link, count() AS clicks, uniqExact(email_id) AS clicked, uniqExact(customer) AS customers FROM (
            SELECT e.link_url AS link, e.email_id AS email_id, {CUSTOMER} AS customer
            FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
            WHERE e.event = '{CLICK}' AND e.timestamp >= {{start:DateTime64(3, 'UTC')}})
        WHERE email_id IN (SELECT email_id FROM ({_messages()})) AND {in_segment()}
        GROUP BY link ORDER BY clicked DESC, link"""
        return {"links": Query(sql, parameters)}
    group = _group(p)
    states = ", ".join(f"countIf({s}) AS {s}" for s in STATES[1:])
    counts = (
        f"SELECT {group} AS grp, count() AS sent, {states} FROM ({_messages()}) GROUP BY grp ORDER BY sent DESC, grp"
    )
    conversions = f"""
    SELECT {group} AS grp, count() AS conversions, sum(c.amount) AS revenue
    FROM ({_credited(p)}) AS c INNER JOIN ({_messages()}) AS m ON m.email_id = c.email_id
    GROUP BY grp"""
    return {"counts": Query(counts, parameters), "conversions": Query(conversions, parameters)}


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    if p.by == "link":
        rows = [{"link": r["link"], "clicks": int(r["clicks"]), "clicked": int(r["clicked"]),
                 "customers": int(r["customers"]), "cell": f"link/{r['link']}"} for r in results["links"]]  # fmt: skip
        columns = [Column(key="link", label="Link", kind="text"), Column(key="clicked", label="Messages clicked"),
                   Column(key="clicks", label="Clicks"), Column(key="customers", label="Customers")]  # fmt: skip
        chart = Chart(kind="bar", x=[r["link"] for r in rows[:10]],
                      series=[Series(label="Messages clicked", values=[r["clicked"] for r in rows[:10]])])  # fmt: skip
        return Report(name=NAME, title=f"{TITLE}: links", definition=DEFINITION, filters=p.echo(), columns=columns,
                      rows=rows, chart=chart)  # fmt: skip
    converted = {r["grp"]: r for r in results["conversions"]}
    rows = []
    for r in results["counts"]:
        row: dict[str, Any] = {"group": r["grp"], "sent": int(r["sent"]), **{s: int(r[s]) for s in STATES[1:]}}
        hit = converted.get(r["grp"], {})
        row["conversions"], row["revenue"] = int(hit.get("conversions", 0)), round(float(hit.get("revenue", 0.0)), 2)
        row["delivery_rate"] = ratio(row["delivered"], row["sent"])
        row["open_rate"] = ratio(row["opened"], row["delivered"])
        row["click_rate"] = ratio(row["clicked"], row["delivered"])
        row["click_to_open"] = ratio(row["clicked"], row["opened"])
        row["unsubscribe_rate"] = ratio(row["unsubscribed"], row["delivered"])
        row["cell"] = f"{r['grp']}/sent"
        row["cells"] = {s: f"{r['grp']}/{s}" for s in STATES}
        rows.append(row)
    columns = [Column(key="group", label="Variant" if p.by == "variant" else "Rule or campaign", kind="text")]
    columns += [Column(key=s, label=s.replace("_", " ").capitalize()) for s in STATES]
    columns += [
        Column(key="delivery_rate", label="Delivered of sent", kind="rate"),
        Column(key="open_rate", label="Opened of delivered", kind="rate"),
        Column(key="click_rate", label="Clicked of delivered", kind="rate"),
        Column(key="click_to_open", label="Click-to-open", kind="rate"),
        Column(key="unsubscribe_rate", label="Unsubscribed of delivered", kind="rate"),
        Column(key="conversions", label="Conversions"), Column(key="revenue", label="Attributed revenue", kind="money"),
    ]  # fmt: skip
    shown = rows[:10]
    chart = Chart(kind="bar", x=[r["group"] for r in shown], y="rate", series=[
        Series(label="Opened of delivered", values=[r["open_rate"] for r in shown]),
        Series(label="Clicked of delivered", values=[r["click_rate"] for r in shown]),
    ])  # fmt: skip
    summary = {"attribution": p.attribution, "window_days": p.window_days,
               "sent": sum(r["sent"] for r in rows), "conversions": sum(r["conversions"] for r in rows)}  # fmt: skip
    return Report(name=NAME, title=TITLE, definition=DEFINITION, filters=p.echo(), columns=columns, rows=rows,
                  chart=chart, summary=summary)  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers of one group's messages in one state (``group/state``; a link: ``link/URL``)."""
    if p.by == "link":
        kind, _, link = cell.partition("/")
        if kind != "link" or not link:
            raise DrillError(f"a cell of this report is link/URL, not {cell!r}")
        sql = f"""
        SELECT DISTINCT {CUSTOMER} AS customer_id
        FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
        WHERE e.event = '{CLICK}' AND e.link_url = {{link:String}} AND e.timestamp >= {{start:DateTime64(3, 'UTC')}}
          AND e.email_id IN (SELECT email_id FROM ({_messages()}))
        ORDER BY customer_id LIMIT {DRILL_LIMIT}"""
        return Query(sql, p.bounds() | {"link": link})
    group, _, state = cell.rpartition("/")
    if state not in STATES or not group:
        raise DrillError(f"a cell of this report is group/state with a state of {', '.join(STATES)}")
    wanted = "1" if state == "sent" else state
    sql = f"""
    SELECT customer AS customer_id, count() AS messages FROM ({_messages()})
    WHERE {_group(p)} = {{group:String}} AND {wanted}
    GROUP BY customer ORDER BY messages DESC, customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, p.bounds() | {"group": group})
