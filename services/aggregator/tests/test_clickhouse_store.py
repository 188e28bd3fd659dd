"""Migrations and the store against the real ClickHouse engine, over its HTTP interface."""

from datetime import UTC, datetime

import pytest
from aggregator_factories import event, record
from test_pipeline import _history

from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.migrate import Migration, MigrationDrift, load_migrations, migrate
from ecrm_aggregator.pipeline import fold_batch, plan_batch
from ecrm_aggregator.settings import AggregatorSettings

pytestmark = pytest.mark.clickhouse


@pytest.fixture
def client(clickhouse_server, clickhouse_database):
    settings = AggregatorSettings(clickhouse_url=clickhouse_server.url, clickhouse_database=clickhouse_database)
    client = connect(settings)
    yield client
    client.command(f"DROP DATABASE IF EXISTS {clickhouse_database}")
    client.close()


def test_migrations_apply_once_from_empty(client, clickhouse_database) -> None:
    assert migrate(client, clickhouse_database) == [m.version for m in load_migrations()]
    assert migrate(client, clickhouse_database) == []
    tables = {r[0] for r in client.query(f"SHOW TABLES FROM {clickhouse_database}").result_rows}
    assert {"events", "profiles", "schema_migrations"} <= tables


def test_an_edited_released_migration_is_refused(client, clickhouse_database, monkeypatch) -> None:
    migrate(client, clickhouse_database)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in load_migrations()]
    monkeypatch.setattr("ecrm_aggregator.migrate.load_migrations", lambda: edited)
    with pytest.raises(MigrationDrift, match="0001_events"):
        migrate(client, clickhouse_database)


def test_events_and_profiles_round_trip_exactly_once(client, clickhouse_database) -> None:
    migrate(client, clickhouse_database)
    store = ClickHouseStore(client, clickhouse_database)
    plan = plan_batch(_history())
    store.insert_events(plan.event_rows, plan.dedup_token)
    store.insert_events(plan.event_rows, plan.dedup_token)  # a redelivered batch
    counts = client.query(f"SELECT count(), uniqExact(message_id) FROM {clickhouse_database}.events").result_rows
    assert counts == [(8, 8)]

    result = fold_batch(plan, store.load_profiles(list(plan.by_customer)), datetime.now(UTC))
    store.insert_profiles(result.profile_rows, plan.dedup_token)
    loaded = store.load_profiles(["u1", "nobody"])
    assert list(loaded) == ["u1"]
    assert loaded["u1"] == result.changes[0].profile

    later = plan_batch([record(event("page", ts="2026-11-21T10:00:00Z"), 8)])
    result = fold_batch(later, store.load_profiles(["u1"]), datetime.now(UTC))
    store.insert_profiles(result.profile_rows, later.dedup_token)
    assert store.load_profiles(["u1"])["u1"].page_views == 2
    row = client.query(
        f"SELECT JSONExtractString(properties, 'order_id') FROM {clickhouse_database}.events "
        "WHERE event = 'Order Completed' ORDER BY timestamp LIMIT 1"
    ).result_rows
    assert row == [("o1",)]
