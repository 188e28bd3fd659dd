"""Each rule's figures for the rules page: its decisions (the relational store,
:mod:`ecrm_interaction.storage.rule_figures`) and what came of its emails (ClickHouse).

Engagement: the opens (machine opens left out: Apple's prefetch and link scanners are not
people) and clicks our tracking records, each counted once per message (``email_id``), by the
``rule_id`` the tracking link carries. Conversions, last-click attribution: an ``Order
Completed`` counts for the rule whose email the customer clicked last before ordering, if that
click was at most :data:`ATTRIBUTION_WINDOW_DAYS` before; its revenue is the order's
``revenue`` (else ``total``). Aggregated in ClickHouse, over the period only.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.engine.rules import RuleSpec
from ecrm_interaction.storage.rule_figures import DecisionFigures, decision_figures, firings
from ecrm_schemas.catalog import CatalogEvent

ATTRIBUTION_WINDOW_DAYS = 7
"""How long after a click an order counts as the email's conversion."""

ENGAGEMENT_SQL = f"""
SELECT rule_id,
       uniqExactIf(email_id, event = '{CatalogEvent.EMAIL_OPENED.value}' AND NOT machine_open) AS opened,
       uniqExactIf(email_id, event = '{CatalogEvent.EMAIL_LINK_CLICKED.value}') AS clicked
FROM (
    SELECT event,
           JSONExtractString(properties, 'rule_id') AS rule_id,
           JSONExtractString(properties, 'email_id') AS email_id,
           JSONExtractBool(properties, 'machine_open') AS machine_open
    FROM {{db}}.events
    WHERE event IN ('{CatalogEvent.EMAIL_OPENED.value}', '{CatalogEvent.EMAIL_LINK_CLICKED.value}')
      AND timestamp >= {{since:DateTime64(3, 'UTC')}}
)
WHERE rule_id != ''
GROUP BY rule_id
"""

CONVERSIONS_SQL = f"""
SELECT c.rule_id AS rule_id, count() AS converted, sum(o.revenue) AS revenue
FROM (
    SELECT customer_id, message_id, any(timestamp) AS ordered_at,
           any(if(JSONHas(properties, 'revenue'), JSONExtractFloat(properties, 'revenue'),
                  JSONExtractFloat(properties, 'total'))) AS revenue
    FROM {{db}}.events
    WHERE event = '{CatalogEvent.ORDER_COMPLETED.value}' AND timestamp >= {{since:DateTime64(3, 'UTC')}}
    GROUP BY customer_id, message_id
) AS o
ASOF INNER JOIN (
    SELECT customer_id, timestamp AS clicked_at, JSONExtractString(properties, 'rule_id') AS rule_id
    FROM {{db}}.events
    WHERE event = '{CatalogEvent.EMAIL_LINK_CLICKED.value}'
      AND timestamp >= {{since:DateTime64(3, 'UTC')}} - INTERVAL {ATTRIBUTION_WINDOW_DAYS} DAY
      AND JSONExtractString(properties, 'rule_id') != ''
) AS c ON o.customer_id = c.customer_id AND o.ordered_at >= c.clicked_at
WHERE o.ordered_at <= c.clicked_at + INTERVAL {ATTRIBUTION_WINDOW_DAYS} DAY
GROUP BY c.rule_id
"""


async def engagement(warehouse: Warehouse, since: datetime) -> dict[str, dict[str, Any]]:
    """Opened, clicked, converted and revenue by rule id since ``since``."""
    parameters = {"since": since.astimezone(UTC).replace(tzinfo=None)}
    found: dict[str, dict[str, Any]] = {}
    for row in await warehouse.query(ENGAGEMENT_SQL, parameters):
        found.setdefault(row["rule_id"], {}).update(opened=int(row["opened"]), clicked=int(row["clicked"]))
    for row in await warehouse.query(CONVERSIONS_SQL, parameters):
        found.setdefault(row["rule_id"], {}).update(
            converted=int(row["converted"]), revenue=round(float(row["revenue"]), 2)
        )
    return found


def figures(
    session: Session, rules: list[RuleSpec], since: datetime, engaged: dict[str, dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """One row per rule: its decisions, and its engagement (None for each when ClickHouse is not
    configured: unknown, not zero)."""
    decisions = decision_figures(session, since)
    rows = []
    for rule in rules:
        row: dict[str, Any] = {"rule_id": rule.id, "name": rule.name, "enabled": rule.enabled}
        counted = decisions.get(rule.id, DecisionFigures())
        row |= asdict(counted) | {"triggered": firings(counted, len(rule.actions))}
        mine = (engaged or {}).get(rule.id, {})
        for name in ("opened", "clicked", "converted", "revenue"):
            row[name] = None if engaged is None else mine.get(name, 0)
        rows.append(row)
    return rows


def period_start(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)
