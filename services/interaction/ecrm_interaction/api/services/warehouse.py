"""ClickHouse as the API reads it for people: profiles, events, segment membership, figures.

One :class:`Warehouse` per app, shared by concurrent requests: its client must be built without
a session id (:func:`ecrm_schemas.clickhouse.clickhouse_client` builds it so), since
ClickHouse refuses two queries at once in one session (``create_app(warehouse=...)``, built
from ``CLICKHOUSE_URL``). The console's pages and their API routes read through it. Queries are parameterised
(``{name:Type}``, clickhouse-connect's server-side binding) and run in a worker thread;
``{db}`` in a query is the configured database. Without ClickHouse the routes that need it
answer 503 ``clickhouse_unavailable``.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Warehouse:
    def __init__(self, client: Any, database: str) -> None:
        self.client, self.db = client, database

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of ``sql`` (``{db}`` replaced by the database) as dicts."""
        result = self.client.query(sql.replace("{db}", self.db), parameters=parameters or {})
        return list(result.named_results())

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.rows, sql, parameters)
