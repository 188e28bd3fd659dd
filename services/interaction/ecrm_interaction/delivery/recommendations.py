"""Product recommendations, read from ClickHouse: what customers view and buy.

The item-to-item similarities are the aggregator's (``ecrm_aggregator.item_similarity``
computes them into ``item_similarity``, a new generation now and then); this module only reads
the latest generation (looked up at most once per ``cache_s``).

For one customer (:meth:`Recommendations.for_customer`): the products similar to those they
interacted with, each scored by the sum of similarity times their interaction's weight; then, to
fill up, the most bought products of the last 30 days (the fallback for new customers).
Never a product they bought, nor one whose latest stock (``Inventory Updated`` events, in
``product_stock``) is zero. ``recently_viewed`` lists what they looked at last.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog

from ecrm_interaction.settings import InteractionSettings
from ecrm_schemas.clickhouse import clickhouse_client as clickhouse_client_for

log = structlog.get_logger()

CUSTOMER_ITEMS_SQL = """
SELECT item, max(weight) AS w, max(bought) AS bought, max(seen) AS last_viewed FROM (
    SELECT JSONExtractString(properties, 'product_id') AS item, if(event = 'Product Added', 2, 1) AS weight,
           0 AS bought, timestamp AS seen
    FROM {db}.events
    WHERE customer_id IN {{keys:Array(String)}} AND type = 'track' AND event IN ('Product Viewed', 'Product Added')
    UNION ALL
    SELECT JSONExtractString(product, 'product_id') AS item, 3 AS weight, 1 AS bought,
           toDateTime64(0, 3, 'UTC') AS seen
    FROM {db}.events ARRAY JOIN JSONExtractArrayRaw(properties, 'products') AS product
    WHERE customer_id IN {{keys:Array(String)}} AND type = 'track' AND event = 'Order Completed'
) WHERE item != '' GROUP BY item
"""


@dataclass(frozen=True, slots=True)
class CustomerItems:
    weights: dict[str, float]
    bought: set[str]
    recently_viewed: list[str]


def rank(
    similar: list[tuple[str, str, float]],
    mine: CustomerItems,
    popular: list[str],
    out_of_stock: set[str],
    limit: int,
) -> list[dict[str, Any]]:
    """Combine similarities and popularity into the customer's top ``limit`` (pure).

    ``similar``: (item, similar item, similarity) rows for the customer's items.
    """
    scores: dict[str, float] = {}
    for item, other, score in similar:
        scores[other] = scores.get(other, 0.0) + score * mine.weights.get(item, 0.0)
    excluded = mine.bought | out_of_stock
    ranked = [(p, s) for p, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])) if p not in excluded]
    picks = [{"product_id": p, "score": round(s, 4), "source": "similar"} for p, s in ranked[:limit]]
    chosen = {p["product_id"] for p in picks}
    for product in popular:
        if len(picks) >= limit:
            break
        if product not in excluded and product not in chosen:
            picks.append({"product_id": product, "score": 0.0, "source": "popular"})
            chosen.add(product)
    return picks


LATEST_EVENTS_SQL = (
    "SELECT {columns} FROM {db}.events WHERE customer_id IN {keys:Array(String)}"
    " AND timestamp >= {since:DateTime64(3, 'UTC')}"
    " ORDER BY timestamp DESC LIMIT 1 BY customer_id, type, event, timestamp, message_id LIMIT {limit:UInt32}"
)
"""A customer's latest events since a moment, each once. Without ``FINAL`` (which merges every
part the customer's granules are in): a redelivered event has the same sorting key, so
``LIMIT 1 BY`` the key drops it as ``FINAL`` would."""

LATEST_MONTHS_SQL = (
    "SELECT toStartOfMonth(timestamp) AS month, count() AS n FROM {db}.events"
    " WHERE customer_id IN {keys:Array(String)} GROUP BY month ORDER BY month DESC"
)
"""How many events the customer's ids have per month (narrow columns only): the events are
partitioned by month, so the latest events are read from the few months that hold them."""

BEGINNING = datetime(1970, 1, 1)


def latest_events(
    query: Callable[[str, dict[str, Any]], list[dict[str, Any]]], columns: str, keys: list[str], limit: int
) -> list[dict[str, Any]]:
    """The latest ``limit`` events of ``keys``, newest first, through ``query(sql, parameters)``
    (``{db}`` left in the SQL): read from the latest months that hold at least ``limit`` of them
    (all of them when those held fewer once redeliveries are dropped)."""
    since, seen = BEGINNING, 0
    for month in query(LATEST_MONTHS_SQL, {"keys": keys}):
        seen += int(month["n"])
        if seen >= limit:
            since = datetime(month["month"].year, month["month"].month, 1)
            break
    sql = LATEST_EVENTS_SQL.replace("{columns}", columns)
    rows = query(sql, {"keys": keys, "since": since, "limit": limit})
    if len(rows) < limit and since != BEGINNING:
        rows = query(sql, {"keys": keys, "since": BEGINNING, "limit": limit})
    return rows


class Recommendations:
    """Recommendation queries against ClickHouse (``client``: clickhouse-connect)."""

    def __init__(self, client: Any, database: str, cache_s: float = 60.0) -> None:
        self.client, self.db, self.cache_s = client, database, cache_s
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[float, Any]] = {}

    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cached.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        value = compute()
        with self._lock:
            self._cached[key] = (time.monotonic() + self.cache_s, value)
        return value

    def _generation(self) -> int:
        def latest() -> int:
            rows = self.client.query(f"SELECT max(generation) FROM {self.db}.item_similarity").result_rows
            return int(rows[0][0] or 0)

        return int(self._memo("generation", latest))

    def popular(self, days: int = 30, limit: int = 100) -> list[str]:
        def compute() -> list[str]:
            rows = self.client.query(
                f"SELECT JSONExtractString(product, 'product_id') AS item, count() AS n "
                f"FROM {self.db}.events ARRAY JOIN JSONExtractArrayRaw(properties, 'products') AS product "
                "WHERE type = 'track' AND event = 'Order Completed' AND timestamp >= {since:DateTime64(3, 'UTC')} "
                "AND item != '' GROUP BY item ORDER BY n DESC, item LIMIT {limit:UInt32}",
                parameters={"since": datetime.now(UTC) - timedelta(days=days), "limit": limit},
            ).result_rows
            return [r[0] for r in rows]

        return list(self._memo(f"popular:{days}:{limit}", compute))

    def out_of_stock(self) -> set[str]:
        def compute() -> set[str]:
            rows = self.client.query(
                f"SELECT product_id FROM {self.db}.product_stock GROUP BY product_id "
                "HAVING argMax(quantity, updated_at) <= 0"
            ).result_rows
            return {r[0] for r in rows}

        return set(self._memo("out_of_stock", compute))

    def keys_of(self, customer_id: str) -> list[str]:
        """The customer's id and every anonymous id stitched to it."""
        rows = self.client.query(
            f"SELECT anonymous_id FROM {self.db}.identity_links FINAL "
            "WHERE user_id = {c:String} AND state = 'merged'",
            parameters={"c": customer_id},
        ).result_rows
        return [customer_id, *sorted(r[0] for r in rows)]

    def customer_items(self, customer_id: str) -> CustomerItems:
        rows = self.client.query(
            CUSTOMER_ITEMS_SQL.format(db=self.db), parameters={"keys": self.keys_of(customer_id)}
        ).result_rows
        weights = {r[0]: float(r[1]) for r in rows}
        bought = {r[0] for r in rows if r[2]}
        viewed = [r[0] for r in sorted(rows, key=lambda r: r[3], reverse=True) if r[3] and r[3].year > 1970]
        return CustomerItems(weights, bought, viewed[:10])

    def similar_to(self, items: list[str]) -> list[tuple[str, str, float]]:
        if not items:
            return []
        rows = self.client.query(
            f"SELECT item, similar, score FROM {self.db}.item_similarity "
            "WHERE generation = {g:UInt64} AND item IN {items:Array(String)}",
            parameters={"g": self._generation(), "items": items},
        ).result_rows
        return [(r[0], r[1], float(r[2])) for r in rows]

    def for_customer(self, customer_id: str, limit: int = 10) -> list[dict[str, Any]]:
        mine = self.customer_items(customer_id)
        similar = self.similar_to(sorted(mine.weights))
        picks = rank(similar, mine, self.popular(), self.out_of_stock(), limit)
        for pick in picks:
            pick["recently_viewed"] = pick["product_id"] in mine.recently_viewed
        return picks

    def recently_viewed(self, customer_id: str) -> list[str]:
        return self.customer_items(customer_id).recently_viewed

    def recent_events(self, customer_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The customer's latest events, newest first, each once: ``properties`` (and an identify's
        or group's ``traits``) as JSON objects, a page's or screen's ``name`` and ``category``."""

        def query(sql: str, parameters: dict[str, Any]) -> list[Any]:
            return list(self.client.query(sql.replace("{db}", self.db), parameters=parameters).named_results())

        columns = "message_id, type, event, timestamp, properties, traits, name, category"
        rows = latest_events(query, columns, self.keys_of(customer_id), limit)
        events = []
        for row in rows:
            message_id, type_, event, at = row["message_id"], row["type"], row["event"], row["timestamp"]
            properties, traits, name, category = row["properties"], row["traits"], row["name"], row["category"]
            item: dict[str, Any] = {
                "message_id": message_id,
                "type": type_,
                "event": event or None,
                "timestamp": at.isoformat(),
                "properties": orjson.loads(properties or "{}"),
            }
            if type_ in ("identify", "group"):
                item["traits"] = orjson.loads(traits or "{}")
            if type_ in ("page", "screen"):
                item |= {"name": name or None, "category": category or None}
            events.append(item)
        return events


def clickhouse_client(settings: InteractionSettings) -> Any:
    """A clickhouse-connect client for ``CLICKHOUSE_URL`` (``http(s)://`` or ``chdb://``)."""
    return clickhouse_client_for(settings.clickhouse_url or "", settings.clickhouse_user, settings.clickhouse_password)


def clickhouse_services(
    settings: InteractionSettings,
) -> tuple[Callable[[str, int], list[dict[str, Any]]] | None, Callable[[str, int], list[dict[str, Any]]] | None]:
    """(recommender, recent events) when ``CLICKHOUSE_URL`` is set, else Nones."""
    if not settings.clickhouse_url:
        return None, None
    recommendations = Recommendations(clickhouse_client(settings), settings.clickhouse_database)
    return recommendations.for_customer, recommendations.recent_events
