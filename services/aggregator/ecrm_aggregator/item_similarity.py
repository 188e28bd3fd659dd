"""Item-to-item similarity: an aggregate of customers' views, carts and purchases, kept in ClickHouse.

The aggregator owns the ``item_similarity`` table (migration 0007) and the job that fills it;
the interaction service only reads it (``ecrm_interaction.delivery.recommendations``).

Every ``AGGREGATOR_SIMILARITY_REFRESH_S`` the similarities are recomputed as a new generation
(its start, in ms; old generations expire after a day): each customer's interaction with a
product weighs 1 for a view, 2 for an add to cart, 3 for a purchase, over the last 90 days of
stitched events (``customer_events``), and two products are as similar as the cosine of their
customer vectors; each product keeps its 50 most similar. Readers use the latest generation.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

log = structlog.get_logger()

SIMILARITY_SQL = """
INSERT INTO {db}.item_similarity (generation, item, similar, score)
WITH interactions AS (
    SELECT customer_id, item, max(weight) AS w FROM (
        SELECT customer_id, JSONExtractString(properties, 'product_id') AS item,
               if(event = 'Product Added', 2, 1) AS weight
        FROM {db}.customer_events
        WHERE type = 'track' AND event IN ('Product Viewed', 'Product Added')
          AND timestamp >= {{since:DateTime64(3, 'UTC')}}
        UNION ALL
        SELECT customer_id, JSONExtractString(product, 'product_id') AS item, 3 AS weight
        FROM {db}.customer_events ARRAY JOIN JSONExtractArrayRaw(properties, 'products') AS product
        WHERE type = 'track' AND event = 'Order Completed' AND timestamp >= {{since:DateTime64(3, 'UTC')}}
    ) WHERE item != '' GROUP BY customer_id, item
),
norms AS (SELECT item, sum(w * w) AS n FROM interactions GROUP BY item)
SELECT {{generation:UInt64}}, a.item, b.item, sum(a.w * b.w) / sqrt(any(na.n) * any(nb.n)) AS score
FROM interactions AS a
INNER JOIN interactions AS b ON a.customer_id = b.customer_id
INNER JOIN norms AS na ON na.item = a.item
INNER JOIN norms AS nb ON nb.item = b.item
WHERE a.item != b.item
GROUP BY a.item, b.item
ORDER BY a.item, score DESC
LIMIT 50 BY a.item
"""


def refresh_item_similarity(client: Any, database: str, now: datetime | None = None, days: int = 90) -> int:
    """Recompute the similarities as a new generation; returns how many pairs it holds."""
    now = now or datetime.now(UTC)
    generation = int(now.timestamp() * 1000)
    client.command(
        SIMILARITY_SQL.format(db=database),
        parameters={"since": now - timedelta(days=days), "generation": generation},
    )
    count = client.query(
        f"SELECT count() FROM {database}.item_similarity WHERE generation = {{g:UInt64}}",
        parameters={"g": generation},
    ).result_rows[0][0]
    return int(count)


class SimilarityRefresher(threading.Thread):
    """Recomputes the similarities every ``interval_s`` beside the consumer, until ``stop()``.

    A failed refresh (ClickHouse away) is logged and tried again within 30 s; the readers keep
    the previous generation meanwhile.
    """

    def __init__(self, client: Any, database: str, interval_s: float) -> None:
        super().__init__(name="item-similarity", daemon=True)
        self.client, self.database, self.interval_s = client, database, interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            pause = self.interval_s
            try:
                pairs = refresh_item_similarity(self.client, self.database)
                log.info("item_similarity_refreshed", pairs=pairs)
            except Exception as exc:  # the next round tries again
                log.error("item_similarity_refresh_failed", error=str(exc)[:300])
                pause = min(pause, 30.0)
            self._stopping.wait(pause)

    def stop(self) -> None:
        self._stopping.set()
