"""Fixtures shared by the aggregator's ClickHouse tests (the engine itself: ecrm_embedded.testing)."""

import pytest

from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.settings import AggregatorSettings


@pytest.fixture
def client(clickhouse_server, clickhouse_database):
    """A client of the real engine; the test's database is dropped afterwards (not yet migrated)."""
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    yield client
    client.command(f"DROP DATABASE IF EXISTS {clickhouse_database}")
    client.close()


@pytest.fixture
def store(client, clickhouse_database) -> ClickHouseStore:
    """The store on the test's database, migrated to the latest version."""
    migrate(client, clickhouse_database)
    return ClickHouseStore(client, clickhouse_database)
