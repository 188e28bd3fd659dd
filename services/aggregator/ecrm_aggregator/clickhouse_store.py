"""The aggregator's ClickHouse shell: insert events and profiles, read current profiles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from ecrm_aggregator.rows import EVENT_COLUMNS, PROFILE_COLUMNS, profile_from_row
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.profile import CustomerProfile


def connect(settings: AggregatorSettings, database: str | None = None) -> Client:
    """A clickhouse-connect client for ``CLICKHOUSE_URL`` (http, https or chdb)."""
    url = settings.clickhouse_url
    if url.startswith("chdb://"):
        return clickhouse_connect.get_client(dsn=url)
    parts = urlsplit(url)
    return clickhouse_connect.get_client(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        secure=parts.scheme == "https",
        username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database=database or "default",
        autogenerate_session_id=False,
    )


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class ClickHouseStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client, self.database = client, database

    def insert_events(self, rows: Sequence[Sequence[Any]], dedup_token: str) -> None:
        """Insert event rows; the same token inserted twice is stored once."""
        self._insert("events", EVENT_COLUMNS, rows, dedup_token)

    def insert_profiles(self, rows: Sequence[Sequence[Any]], dedup_token: str) -> None:
        """Insert profile rows (new versions); the same token inserted twice is stored once."""
        self._insert("profiles", PROFILE_COLUMNS, rows, dedup_token)

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], dedup_token: str) -> None:
        if rows:
            self.client.insert(
                f"{self.database}.{table}",
                rows,
                column_names=list(columns),
                settings={"insert_deduplication_token": dedup_token},
            )

    def load_profiles(self, customer_ids: Sequence[str]) -> dict[str, CustomerProfile]:
        """The latest profile of each customer that has one."""
        if not customer_ids:
            return {}
        result = self.client.query(
            f"SELECT {', '.join(PROFILE_COLUMNS)} FROM {self.database}.profiles FINAL "
            "WHERE customer_id IN {ids:Array(String)}",
            parameters={"ids": list(customer_ids)},
        )
        profiles = {}
        for row in result.result_rows:
            profile = profile_from_row([_utc(v) for v in row])
            profiles[profile.customer_id] = profile
        return profiles
