"""``ecrm-collector loadgen``: offer a shop's traffic to a collector at a fixed rate.

For smoke and load tests of a deployment (compose's ``load`` profile): batches of 50 events
(page views, product views, carts, orders, identifies) from ``--customers`` customers are
posted to ``/v1/batch`` on a schedule set in advance (open loop), and the answers counted.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx

from ecrm_schemas.catalog import CatalogEvent


def shop_event(rng: random.Random, customers: int) -> dict[str, Any]:
    customer = f"load-{int(rng.paretovariate(1.2)) % customers}"
    product = f"p{rng.randrange(200)}"
    kind = rng.random()
    base: dict[str, Any] = {"userId": customer, "messageId": str(uuid.uuid4()),
                            "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
    if kind < 0.5:
        return base | {"type": "page", "properties": {"path": f"/products/{product}"}}
    if kind < 0.8:
        return base | {"type": "track", "event": CatalogEvent.PRODUCT_VIEWED, "properties": {"product_id": product}}
    if kind < 0.9:
        return base | {"type": "track", "event": CatalogEvent.PRODUCT_ADDED, "properties": {"product_id": product}}
    if kind < 0.97:
        return base | {"type": "track", "event": CatalogEvent.ORDER_COMPLETED,
                       "properties": {"order_id": str(uuid.uuid4()), "total": round(rng.uniform(5, 300), 2),
                                      "products": [{"product_id": product}]}}  # fmt: skip
    return base | {"type": "identify", "traits": {"email": f"{customer}@example.com"}}


async def offer(url: str, key: str, rate: float, seconds: float, customers: int, seed: int = 1) -> Counter[str]:
    """Post ``rate`` events/s for ``seconds``; returns the answers by status (and errors by kind)."""
    rng, outcome = random.Random(seed), Counter[str]()
    batch, total = 50, int(rate * seconds)
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=url.rstrip("/"), auth=(key, ""), timeout=30) as client:

        async def send(events: list[dict[str, Any]]) -> None:
            try:
                answer = await client.post("/v1/batch", json={"batch": events})
                outcome[str(answer.status_code)] += 1
                outcome["events_accepted"] += int(answer.json().get("accepted", 0)) if answer.is_success else 0
            except httpx.HTTPError as exc:
                outcome[type(exc).__name__] += 1

        tasks = []
        for sent in range(0, total, batch):
            due = start + sent / rate
            if (ahead := due - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            tasks.append(
                asyncio.create_task(send([shop_event(rng, customers) for _ in range(min(batch, total - sent))]))
            )
        await asyncio.gather(*tasks)
    return outcome
