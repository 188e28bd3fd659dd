"""Numbered ClickHouse migrations: ``migrations/NNNN_name.sql``, applied in order, once.

Each file is frozen once released (its checksum is recorded and checked); a change to the
schema is a new file. Applied versions are recorded in ``<database>.schema_migrations``.
A file holds one or more statements separated by ``;``; ``{database}`` is replaced by the
target database.

The same files give the DDL for a ClickHouse cluster (:func:`for_cluster`): each table
becomes a Replicated table ``<name>_local`` on every shard plus a Distributed table
``<name>`` over them, every statement runs ``ON CLUSTER``, and views join globally. The
files are written in one fixed style (see the existing ones) so that this rewrite stays
simple; the snapshot tests show its output.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str, cluster: str | None = None) -> list[str]:
        """The statements to run, for one server or (``cluster``) for every shard of a cluster."""
        text = self.sql.replace("{database}", database)
        body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        single = [s.strip() for s in body.split(";") if s.strip()]
        if cluster is None:
            return single
        return [out for statement in single for out in for_cluster(statement, database, cluster)]


SHARDING_KEYS = {
    "product_stock": "cityHash64(product_id)",
    "item_similarity": "cityHash64(item)",
    "identity_links": "cityHash64(anonymous_id)",
    "identity_merges": "cityHash64(anonymous_id)",
    "segment_definitions": "cityHash64(segment_id)",
}
"""Tables not sharded by customer; every row of one key must land on one shard for FINAL."""
CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*\(", re.S)
ENGINE = re.compile(r"ENGINE = (\w*MergeTree)(?:\(([^)]*)\))?")
ALTER_TABLE = re.compile(r"^ALTER TABLE (\w+)\.(\w+)\s", re.S)
CREATE_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS (\w+)\.(\w+) AS", re.S)
REPLACE_VIEW = re.compile(r"^CREATE OR REPLACE VIEW (\w+)\.(\w+) AS", re.S)
INSERT_SELECT = re.compile(r"^INSERT INTO (\w+)\.(\w+)\s+SELECT\b", re.S)
CREATE_MATERIALIZED_VIEW = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+) TO (\w+)\.(\w+) AS", re.S)


def _adds_columns_only(alter_clauses: str) -> bool:
    """Whether every clause of an ALTER adds a column (the Distributed table needs the columns too)."""
    clauses, depth, start = [], 0, 0
    for i, char in enumerate(alter_clauses):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            clauses.append(alter_clauses[start:i])
            start = i + 1
    clauses.append(alter_clauses[start:])
    return all(c.strip().startswith("ADD COLUMN") for c in clauses)


def for_cluster(statement: str, database: str, cluster: str) -> list[str]:
    """One single-server statement as the statements that do the same on ``cluster``."""
    if match := CREATE_TABLE.match(statement):
        table = match[2]
        local = f"{database}.{table}_local"
        engine = ENGINE.search(statement)
        if engine is None:
            raise ValueError(f"{table}: no MergeTree engine to replicate")
        args = ", ".join(a for a in (f"'/clickhouse/tables/{{shard}}/{database}/{table}_local'", "'{replica}'",
                                     engine[2]) if a)  # fmt: skip
        replicated = f"CREATE TABLE IF NOT EXISTS {local} ON CLUSTER {cluster} (" + statement[match.end() :].replace(
            engine[0], f"ENGINE = Replicated{engine[1]}({args})"
        ).replace("non_replicated_deduplication_window", "replicated_deduplication_window")
        key = SHARDING_KEYS.get(table, "cityHash64(customer_id)")
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {local} "
            f"ENGINE = Distributed({cluster}, {database}, {table}_local, {key})"
        )
        return [replicated, distributed]
    if match := ALTER_TABLE.match(statement):
        rest = statement[match.end() :]
        local = f"ALTER TABLE {database}.{match[2]}_local ON CLUSTER {cluster} {rest}"
        if not _adds_columns_only(rest):
            return [local]  # projections and storage settings exist on the shards' tables only
        return [local, f"ALTER TABLE {database}.{match[2]} ON CLUSTER {cluster} {rest}"]
    if match := CREATE_MATERIALIZED_VIEW.match(statement):
        # On each shard, from the shard's rows of the source into the shard's part of the target.
        rest = re.sub(rf"\bFROM {database}\.(\w+)", rf"FROM {database}.\1_local", statement[match.end() :])
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{match[2]}_local ON CLUSTER {cluster} "
                f"TO {database}.{match[4]}_local AS{rest}"]  # fmt: skip
    if match := CREATE_VIEW.match(statement):
        rest = statement[match.end() :].replace("LEFT ANY JOIN", "GLOBAL LEFT ANY JOIN")
        return [f"CREATE VIEW IF NOT EXISTS {database}.{match[2]} ON CLUSTER {cluster} AS{rest}"]
    if match := REPLACE_VIEW.match(statement):  # a view redefined to show new columns
        rest = statement[match.end() :].replace("LEFT ANY JOIN", "GLOBAL LEFT ANY JOIN")
        return [f"CREATE OR REPLACE VIEW {database}.{match[2]} ON CLUSTER {cluster} AS{rest}"]
    if INSERT_SELECT.match(statement):
        # A backfill runs once, from the Distributed tables: they read every shard and route the
        # rows by the target's sharding key.
        return [statement]
    raise ValueError(f"no cluster form for: {statement[:60]}")


def load_migrations() -> list[Migration]:
    """Every migration shipped with the aggregator, in version order."""
    found = []
    for entry in resources.files("ecrm_aggregator.migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..n without gaps, found {versions}")
    return found


class MigrationDrift(RuntimeError):
    """An applied migration's file was edited after release."""


def bookkeeping_statements(database: str, cluster: str | None = None) -> list[str]:
    """The database and the table that records applied migrations."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    engine = (
        f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{database}/schema_migrations', '{{replica}}')"
        if cluster
        else "MergeTree"
    )
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}{on_cluster}",
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations{on_cluster} "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        f"ENGINE = {engine} ORDER BY version",
    ]


def all_statements(database: str, cluster: str | None = None) -> list[str]:
    """Every statement from empty to the latest version (what ``ecrm migrate --print`` shows)."""
    statements = bookkeeping_statements(database, cluster)
    for migration in load_migrations():
        statements += migration.statements(database, cluster)
    return statements


def migrate(client: Any, database: str, cluster: str | None = None) -> list[int]:
    """Apply the pending migrations to ``database`` (created if missing); returns versions applied.

    ``cluster``: run them ``ON CLUSTER`` with Replicated and Distributed tables.
    """
    for statement in bookkeeping_statements(database, cluster):
        client.command(statement)
    applied = {
        row[0]: row[1]
        for row in client.query(f"SELECT version, checksum FROM {database}.schema_migrations").result_rows
    }
    done = []
    for migration in load_migrations():
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise MigrationDrift(
                    f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                    "released migrations are frozen, add a new one instead"
                )
            continue
        for statement in migration.statements(database, cluster):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        done.append(migration.version)
    return done


def events_ttl_statement(
    database: str, retention_days: int, current_ttl: str, cluster: str | None = None
) -> str | None:
    """The ALTER that makes the events table keep ``retention_days`` (0: forever), or None when it
    already does. ``current_ttl``: the table's TTL clause as ClickHouse reports it ("" for none)."""
    table = f"{database}.events_local ON CLUSTER {cluster}" if cluster else f"{database}.events"
    if retention_days <= 0:
        return f"ALTER TABLE {table} REMOVE TTL" if current_ttl else None
    wanted = f"toDateTime(timestamp) + toIntervalDay({retention_days})"
    if current_ttl.strip() == wanted:
        return None
    return f"ALTER TABLE {table} MODIFY TTL toDateTime(timestamp) + INTERVAL {retention_days} DAY"


TTL_CLAUSE = re.compile(r"\bTTL (.+?)(?: SETTINGS |$)")


def apply_events_retention(client: Any, database: str, retention_days: int, cluster: str | None = None) -> str | None:
    """Make the events table keep ``retention_days`` of events (0: forever); returns the ALTER run, if any."""
    table = "events_local" if cluster else "events"
    rows = client.query(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}",
        parameters={"db": database, "table": table},
    ).result_rows
    match = TTL_CLAUSE.search(rows[0][0]) if rows else None
    statement = events_ttl_statement(database, retention_days, match[1] if match else "", cluster)
    if statement is not None:
        client.command(statement)
    return statement
