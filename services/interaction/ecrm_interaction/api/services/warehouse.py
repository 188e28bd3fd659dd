"""ClickHouse as the API reads it for people: profiles, events, segment membership, figures.

One :class:`Warehouse` per app (``create_app(warehouse=...)``, built from ``CLICKHOUSE_URL``);
the console's pages and their API routes read through it. Queries are parameterised
(``{name:Type}``, clickhouse-connect's server-side binding) and run in a worker thread;
``{db}`` in a query is the configured database. Without ClickHouse the routes that need it
answer 503 ``clickhouse_unavailable``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class Warehouse:
    def __init__(self, client: Any, database: str) -> None:
        self.client, self.db = client, database
        # One query at a time: clickhouse-connect refuses concurrent queries in its session.
        self._one_at_a_time = threading.Lock()

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of ``sql`` (``{db}`` replaced by the database) as dicts."""
        with self._one_at_a_time:
            result = self.client.query(sql.replace("{db}", self.db), parameters=parameters or {})
            return list(result.named_results())

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.rows, sql, parameters)
