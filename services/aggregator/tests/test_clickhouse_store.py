"""Migrations and the store against the real ClickHouse engine, over its HTTP interface."""

import pytest
from aggregator_factories import event, record
from test_pipeline import _history

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.clickhouse_store import ClickHouseStore
from ecrm_aggregator.migrate import Migration, MigrationDrift, load_migrations, migrate
from ecrm_aggregator.pipeline import plan_batch
from ecrm_aggregator.rows import event_row

pytestmark = pytest.mark.clickhouse


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
    rows = [event_row(p) for p in plan.decoded.events]
    store.insert_events(rows, plan.dedup_token)
    store.insert_events(rows, plan.dedup_token)  # the same insert again: deduplicated by its token
    counts = client.query(f"SELECT count(), uniqExact(message_id) FROM {clickhouse_database}.events").result_rows
    assert counts == [(8, 8)]
    assert store.stored_positions(["u1"], [*plan.message_ids[:2], "unknown"]) == {
        plan.message_ids[0]: (0, 0),
        plan.message_ids[1]: (0, 1),
    }
    assert [p.event for p in store.load_history(["u1"])] == sorted(
        (p.event for p in plan.decoded.events), key=lambda e: e.timestamp
    )

    writer = BatchWriter(store, None, 0.5)
    result = writer.store_batch(plan_batch(_history()))
    loaded = store.load_profiles(["u1", "nobody"])
    assert list(loaded) == ["u1"]
    assert loaded["u1"] == result.changes[0].profile

    writer.store_batch(plan_batch([record(event("page", ts="2026-11-21T10:00:00Z"), 8)]))
    assert store.load_profiles(["u1"])["u1"].page_views == 2
    writer.store_batch(plan_batch([*_history(), record(event("page", ts="2026-11-21T10:00:00Z"), 8)]))  # redelivered
    assert store.load_profiles(["u1"])["u1"].page_views == 2
    counts = client.query(f"SELECT count(), uniqExact(message_id) FROM {clickhouse_database}.events").result_rows
    assert counts == [(9, 9)]
    row = client.query(
        f"SELECT JSONExtractString(properties, 'order_id') FROM {clickhouse_database}.events "
        "WHERE event = 'Order Completed' ORDER BY timestamp LIMIT 1"
    ).result_rows
    assert row == [("o1",)]


def test_the_profile_cache_sees_an_erasure_and_a_histories_query_splits_by_group(client, clickhouse_database) -> None:
    """The worker keeps the profiles it wrote; a profile deleted since (an erasure) is not folded on from."""
    migrate(client, clickhouse_database)
    store = ClickHouseStore(client, clickhouse_database)
    writer = BatchWriter(store, None, 0.5)
    writer.store_batch(plan_batch(_history()))
    writer.store_batch(plan_batch([record(event("page", customer="u2", ts="2026-11-21T10:00:00Z"), 8)]))
    assert writer.current_profiles(["u1", "u2"])["u1"].event_count == 8
    assert len(writer.profiles) == 2

    for table in ("events", "profiles"):
        client.command(f"DELETE FROM {clickhouse_database}.{table} WHERE customer_id = 'u1'")
    assert set(writer.current_profiles(["u1", "u2"])) == {"u2"}
    assert len(writer.profiles) == 1  # the erased copy is gone from memory too
    writer.store_batch(plan_batch([record(event("page", ts="2026-11-22T10:00:00Z"), 9)]))
    assert store.load_profiles(["u1"])["u1"].event_count == 1  # a new profile, not the erased one

    histories = store.load_histories({"u1": ["u1"], "u2": ["u2", "a9"], "none": ["nobody"]})
    assert {group: len(events) for group, events in histories.items()} == {"u1": 1, "u2": 1, "none": 0}
    assert histories["u2"][0].event.userId == "u2"
