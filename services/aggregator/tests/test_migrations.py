"""The ClickHouse schema: snapshots of its DDL, upgrades from the previous version, retention.

Snapshots change only on purpose: ``ECRM_UPDATE_SNAPSHOTS=1 make test`` rewrites them, and
the diff is reviewed with the new migration.
"""

import os
import re
from pathlib import Path

import pytest
from aggregator_factories import event, record

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.clickhouse_store import ClickHouseStore
from ecrm_aggregator.migrate import (
    all_statements,
    apply_events_retention,
    events_ttl_statement,
    load_migrations,
    migrate,
)
from ecrm_aggregator.pipeline import plan_batch

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _matches_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("ECRM_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.exists(), f"no snapshot {name}: run with ECRM_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{name} differs from the snapshot; review, then ECRM_UPDATE_SNAPSHOTS=1"


def test_single_server_and_cluster_ddl_match_their_snapshots() -> None:
    _matches_snapshot("ddl_single.sql", ";\n\n".join(all_statements("ecrm")) + ";\n")
    _matches_snapshot("ddl_cluster.sql", ";\n\n".join(all_statements("ecrm", "ecrm_cluster")) + ";\n")


def test_cluster_ddl_replicates_every_table_and_runs_on_the_cluster() -> None:
    statements = all_statements("ecrm", "c1")
    assert all(" ON CLUSTER c1" in s for s in statements if not s.startswith("INSERT INTO"))
    backfills = [s for s in statements if s.startswith("INSERT INTO")]
    assert [re.match(r"INSERT INTO ecrm\.(\w+)", s)[1] for s in backfills] == [  # type: ignore[index]
        "business_events",
        "customer_activity",
        "email_messages",
    ]  # once, through the Distributed tables
    local_tables = re.findall(r"CREATE TABLE IF NOT EXISTS ecrm\.(\w+)_local ", "\n".join(statements))
    assert local_tables == ["events", "profiles", "identity_links", "identity_merges", "segment_definitions",
                            "segment_membership", "segment_changes", "product_stock", "item_similarity",
                            "business_events", "customer_activity", "email_messages"]  # fmt: skip
    for table in local_tables:
        assert f"ENGINE = Distributed(c1, ecrm, {table}_local, cityHash64(" in "\n".join(statements)
    assert not any("non_replicated" in s or "ENGINE = ReplacingMergeTree" in s for s in statements)
    assert events_ttl_statement("ecrm", 30, "", "c1") == (
        "ALTER TABLE ecrm.events_local ON CLUSTER c1 MODIFY TTL toDateTime(timestamp) + INTERVAL 30 DAY"
    )


@pytest.mark.clickhouse
def test_cluster_ddl_is_valid_clickhouse_sql(client) -> None:
    """No cluster here: the engine's parser checks every statement without running it."""
    for statement in all_statements("ecrm", "ecrm_cluster"):
        client.query("SELECT formatQuery({q:String})", parameters={"q": statement})


@pytest.mark.clickhouse
def test_migrated_schema_matches_its_snapshot(client, clickhouse_database) -> None:
    migrate(client, clickhouse_database)
    tables = [r[0] for r in client.query(f"SHOW TABLES FROM {clickhouse_database}").result_rows]
    ddl = [client.query(f"SHOW CREATE TABLE {clickhouse_database}.{t}").result_rows[0][0] for t in tables]
    text = "\n\n".join(d.replace(clickhouse_database, "ecrm") for d in ddl) + "\n"
    _matches_snapshot("schema.sql", text)


@pytest.mark.clickhouse
def test_upgrade_from_the_previous_version_keeps_profiles_readable(client, clickhouse_database, monkeypatch) -> None:
    *previous, latest = load_migrations()
    monkeypatch.setattr("ecrm_aggregator.migrate.load_migrations", lambda: previous)
    assert migrate(client, clickhouse_database) == [m.version for m in previous]
    written_before_0004 = {
        "customer_id": "old", "user_id": "old", "traits": "{}", "first_seen": "2026-11-01 00:00:00",
        "last_seen": "2026-11-01 00:00:00", "event_count": 3, "event_counts": {"page": 3}, "page_views": 3,
        "revenue": 0, "version": 3, "source_partition": 0, "source_offset": 7,
    }  # fmt: skip
    client.insert(
        f"{clickhouse_database}.profiles", [list(written_before_0004.values())], column_names=list(written_before_0004)
    )
    monkeypatch.undo()
    assert migrate(client, clickhouse_database) == [latest.version]
    store = ClickHouseStore(client, clickhouse_database)
    old = store.load_profiles(["old"])["old"]
    assert (old.page_views, old.merged_into, old.positions) == (3, None, {})
    BatchWriter(store, None, 0.5).store_batch(plan_batch([
        record(event("page", customer="old"), 7), record(event("page", customer="old", ts="2026-11-21T00:00Z"), 8)
    ]))  # offset 7 was folded before the upgrade  # fmt: skip
    upgraded = store.load_profiles(["old"])["old"]
    assert (upgraded.page_views, upgraded.positions) == (4, {0: 8})


@pytest.mark.clickhouse
def test_events_retention_is_set_changed_and_removed_once(client, clickhouse_database) -> None:
    migrate(client, clickhouse_database)
    assert apply_events_retention(client, clickhouse_database, 0) is None
    assert "INTERVAL 90 DAY" in (apply_events_retention(client, clickhouse_database, 90) or "")
    assert apply_events_retention(client, clickhouse_database, 90) is None  # already so: no mutation
    assert "INTERVAL 30 DAY" in (apply_events_retention(client, clickhouse_database, 30) or "")
    assert (
        apply_events_retention(client, clickhouse_database, 0) == f"ALTER TABLE {clickhouse_database}.events REMOVE TTL"
    )
    engine = client.query(f"SELECT engine_full FROM system.tables WHERE database = '{clickhouse_database}' "
                          "AND name = 'events'").result_rows[0][0]  # fmt: skip
    assert "TTL" not in engine
