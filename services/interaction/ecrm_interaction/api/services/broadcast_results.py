"""A broadcast's results: its messages' fates from the relational store, opens, clicks and
orders from ClickHouse, and the statistics of :mod:`ecrm_interaction.engine.experiments`.

- sent: messages the mail server accepted (``actions`` rows ``sent``);
- opened: sent messages with a human open or a click (a click proves an open; machine opens,
  such as Apple's privacy prefetch, do not count);
- clicked: sent messages with a tracked click;
- converted: customers with an ``Order Completed`` within :data:`CONVERSION_WINDOW` of the
  broadcast's start; for a variant among its sent customers, for the holdout among its members.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

import orjson

from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.engine.broadcasts import EXCLUDED, HOLDOUT
from ecrm_interaction.engine.experiments import Arm, choose_winner, two_proportion_test, wilson_interval
from ecrm_interaction.storage import broadcasts
from ecrm_interaction.storage.models import Broadcast
from ecrm_interaction.storage.store import Store
from ecrm_schemas.actions import ActionStatus
from ecrm_schemas.catalog import CatalogEvent

CONVERSION_WINDOW = timedelta(days=7)
"""How long after a broadcast's start an order counts as its conversion."""
ALPHA = 0.05

_ENGAGEMENT = """
SELECT JSONExtractString(properties, 'email_id') AS email_id,
       countIf(event = {opened:String} AND NOT JSONExtractBool(properties, 'machine_open')) AS opens,
       countIf(event = {clicked:String}) AS clicks
FROM {db}.events
WHERE event IN ({opened:String}, {clicked:String})
  AND timestamp >= fromUnixTimestamp64Milli({since:Int64})
  AND JSONExtractString(properties, 'email_id') IN {ids:Array(String)}
GROUP BY email_id
"""
_CONVERSIONS = """
SELECT DISTINCT customer_id
FROM {db}.events
WHERE event = {order:String}
  AND timestamp >= fromUnixTimestamp64Milli({since:Int64})
  AND timestamp < fromUnixTimestamp64Milli({until:Int64})
  AND customer_id IN {ids:Array(String)}
"""


async def read(store: Store, broadcast_id: str) -> tuple[Broadcast | None, list[broadcasts.Recipient]]:
    def reading() -> tuple[Broadcast | None, list[broadcasts.Recipient]]:
        with store.sessions() as session:
            row = broadcasts.get(session, broadcast_id)
            if row is not None:
                session.expunge(row)
            return row, broadcasts.recipients(session, broadcast_id) if row is not None else []

    return await asyncio.to_thread(reading)


def rate(successes: int, trials: int) -> dict[str, Any]:
    low, high = wilson_interval(successes, trials)
    return {"rate": successes / trials if trials else None, "low": low, "high": high}


async def results(row: Broadcast, placed: list[broadcasts.Recipient], warehouse: Warehouse | None) -> dict[str, Any]:
    sent = [r for r in placed if r.status == ActionStatus.SENT.value]
    holdout = [r.customer_id for r in placed if r.variant == HOLDOUT]
    opened: set[str] = set()
    clicked: set[str] = set()
    converted: set[str] = set()
    engagement = "unavailable"
    if warehouse is not None and row.started_at is not None:
        engagement = "clickhouse"
        since = int(row.started_at.timestamp() * 1000)
        until = int((row.started_at + CONVERSION_WINDOW).timestamp() * 1000)
        if sent:
            rows = await warehouse.query(_ENGAGEMENT, {
                "opened": CatalogEvent.EMAIL_OPENED.value, "clicked": CatalogEvent.EMAIL_LINK_CLICKED.value,
                "since": since, "ids": [r.action_id for r in sent],
            })  # fmt: skip
            clicked = {r["email_id"] for r in rows if r["clicks"]}
            opened = {r["email_id"] for r in rows if r["opens"]} | clicked
        customers = [r.customer_id for r in sent] + holdout
        if customers:
            rows = await warehouse.query(_CONVERSIONS, {
                "order": CatalogEvent.ORDER_COMPLETED.value, "since": since, "until": until, "ids": customers,
            })  # fmt: skip
            converted = {r["customer_id"] for r in rows}
    by_variant: dict[str, list[broadcasts.Recipient]] = defaultdict(list)
    for r in placed:
        if r.variant not in (HOLDOUT, EXCLUDED):
            by_variant[r.variant].append(r)
    variants, arms = [], []
    metric = row.winner_metric
    for v in orjson.loads(row.variants):
        members = by_variant.get(v["name"], [])
        reached = [r for r in members if r.status == ActionStatus.SENT.value]
        n_open = sum(1 for r in reached if r.action_id in opened)
        n_click = sum(1 for r in reached if r.action_id in clicked)
        n_conv = sum(1 for r in reached if r.customer_id in converted)
        statuses: dict[str, int] = defaultdict(int)
        for r in members:
            statuses[r.status or "none"] += 1
        variants.append({
            "name": v["name"], "template": v["template"], "share": v["share"], "recipients": len(members),
            "statuses": dict(statuses), "sent": len(reached), "opened": n_open, "clicked": n_click,
            "converted": n_conv, "open_rate": rate(n_open, len(reached)), "click_rate": rate(n_click, len(reached)),
            "conversion_rate": rate(n_conv, len(reached)),
        })  # fmt: skip
        arms.append(Arm(v["name"], n_click if metric == "clicks" else n_conv, len(reached)))
    winner = choose_winner(arms, ALPHA) if engagement == "clickhouse" else None
    held_converted = sum(1 for c in holdout if c in converted)
    sent_converted = sum(v["converted"] for v in variants)
    lift = two_proportion_test(sent_converted, len(sent), held_converted, len(holdout))
    return {
        "metric": metric,
        "engagement": engagement,
        "conversion_window_days": CONVERSION_WINDOW.days,
        "variants": variants,
        "winner": None if winner is None else {
            "name": winner.name, "runner_up": winner.runner_up, "significant": winner.significant,
            "difference": winner.comparison.difference if winner.comparison else None,
            "p_value": winner.comparison.p_value if winner.comparison else None, "alpha": ALPHA,
        },
        "holdout": {
            "members": len(holdout), "converted": held_converted, "conversion_rate": rate(held_converted, len(holdout)),
            "sent_conversion_rate": rate(sent_converted, len(sent)),
            "difference": lift.difference, "p_value": lift.p_value,
            "significant": bool(holdout) and bool(sent) and lift.p_value < ALPHA and engagement == "clickhouse",
        },
    }  # fmt: skip
