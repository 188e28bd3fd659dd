"""Numbered ClickHouse migrations: ``migrations/NNNN_name.sql``, applied in order, once.

Each file is frozen once released (its checksum is recorded and checked); a change to the
schema is a new file. Applied versions are recorded in ``<database>.schema_migrations``.
A file holds one or more statements separated by ``;``; ``{database}`` is replaced by the
target database.
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

    def statements(self, database: str) -> list[str]:
        text = self.sql.replace("{database}", database)
        body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        return [s.strip() for s in body.split(";") if s.strip()]


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


def migrate(client: Any, database: str) -> list[int]:
    """Apply the pending migrations to ``database`` (created if missing); returns versions applied."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
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
        for statement in migration.statements(database):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        done.append(migration.version)
    return done
