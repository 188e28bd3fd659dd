"""Privacy requests (GDPR/CCPA), the I/O shell: export and erase one customer everywhere.

Erasing, in this order:

1. the customer's ids (user id and anonymous ids, :mod:`.subjects`) are read from ClickHouse;
2. their digests go on the suppression topic (acknowledged) and on this process's list: from
   then on the collector drops new events for them, the aggregator events already on their
   way, every interaction replica profile changes still in flight;
3. their rows are deleted from every ClickHouse table that names a customer (a lightweight
   DELETE: a small patch part per table, no rewrite, see migration 0008) and from the
   relational store;
4. after ``settle_s`` (time for every follower to have read the suppression) the deletions
   run once more for anything folded in the meantime, and what is left is counted: the
   report says zero everywhere when the erasure is complete.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import structlog

from ecrm_interaction.privacy.subjects import (
    CLICKHOUSE_IDENTITY_COLUMNS,
    ErasureReport,
    Identities,
    Link,
    canonical_customer,
    customer_identities,
    export_document,
)
from ecrm_interaction.storage import privacy as relational_store
from ecrm_interaction.storage.store import Store
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.suppressions import Suppression, SuppressionList, identity_digest
from ecrm_schemas.topics import SUPPRESSIONS

log = structlog.get_logger()
LIGHTWEIGHT = "lightweight_delete_mode = 'lightweight_update', allow_experimental_lightweight_update = 1"
"""A patch part masks the rows (where the server cannot, an ordinary lightweight delete). Patch
parts are beta in ClickHouse 25.x: the second setting (an alias newer servers keep) turns them on."""


EXPORTED_COLUMNS = {
    "customer_activity": "customer_id, arrayMap(d -> toDate(d), bitmapToArray(days)) AS active_days, first_at",
}
"""What an export shows of a table whose columns are aggregation states (the days a customer was
active, not the bitmap that keeps them)."""


class PrivacyRequests:
    def __init__(
        self,
        client: Any,
        database: str,
        store: Store,
        producer: ReliableProducer,
        suppressions: SuppressionList,
        *,
        cluster: str | None = None,
        settle_s: float = 2.0,
    ) -> None:
        self.client, self.db, self.store, self.producer = client, database, store, producer
        self.suppressions, self.cluster, self.settle_s = suppressions, cluster, settle_s

    # --- reading --------------------------------------------------------------------------

    def identities(self, requested: str) -> Identities:
        links = self._links([requested])
        customer = canonical_customer(requested, links)
        seen = [
            row[0]
            for row in self.client.query(
                f"SELECT DISTINCT anonymous_id FROM {self.db}.events WHERE customer_id = {{c:String}} "
                "AND anonymous_id != ''",
                parameters={"c": customer},
            ).result_rows
        ]
        return customer_identities(customer, links + self._links([customer, *seen]), seen)

    def _links(self, ids: list[str]) -> list[Link]:
        rows = self.client.query(
            f"SELECT anonymous_id, user_id, state FROM {self.db}.identity_links FINAL "
            "WHERE anonymous_id IN {ids:Array(String)} OR user_id IN {ids:Array(String)}",
            parameters={"ids": ids},
        ).result_rows
        return [Link(anonymous, user, state == "merged") for anonymous, user, state in rows]

    @staticmethod
    def _where(table: str) -> str:
        return " OR ".join(f"{column} IN {{ids:Array(String)}}" for column in CLICKHOUSE_IDENTITY_COLUMNS[table])

    def clickhouse_rows(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        return {
            table: list(
                self.client.query(
                    f"SELECT {EXPORTED_COLUMNS.get(table, '*')} FROM {self.db}.{table} WHERE {self._where(table)}",
                    parameters={"ids": ids},
                ).named_results()
            )
            for table in CLICKHOUSE_IDENTITY_COLUMNS
        }

    def clickhouse_counts(self, ids: list[str]) -> dict[str, int]:
        return {
            table: int(
                self.client.query(
                    f"SELECT count() FROM {self.db}.{table} WHERE {self._where(table)}", parameters={"ids": ids}
                ).result_rows[0][0]
            )
            for table in CLICKHOUSE_IDENTITY_COLUMNS
        }

    def export(self, requested: str) -> dict[str, Any] | None:
        """Everything stored about the customer ``requested`` names; None when nothing is."""
        identities = self.identities(requested)
        clickhouse = self.clickhouse_rows(identities.all)
        relational = self.store.read(relational_store.customer_records, identities.all)
        if not any(clickhouse.values()) and not any(relational.values()):
            return None
        return export_document(identities, clickhouse, relational, datetime.now(UTC))

    # --- erasing --------------------------------------------------------------------------

    def erase(self, requested: str, actor: str) -> ErasureReport:
        """Erase the customer ``requested`` names (see the module's docstring for the order)."""
        started = time.perf_counter()
        identities = self.identities(requested)
        ids = identities.all
        self._suppress(ids)
        reference = identity_digest(identities.customer_id)[:16]
        report = ErasureReport(identities=len(ids))
        report.clickhouse_rows = self._delete_clickhouse(ids)
        report.relational_rows = self.store.write(relational_store.erase_customer, ids, actor, reference)
        time.sleep(self.settle_s)
        for table, rows in self._delete_clickhouse(ids).items():
            report.clickhouse_rows[table] += rows
        if any(self.store.read(relational_store.customer_records, ids).values()):
            for table, rows in self.store.write(
                relational_store.erase_customer, ids, actor, reference, audit=False
            ).items():
                report.relational_rows[table] += rows
        relational_left = self.store.read(relational_store.customer_records, ids)
        report.remaining = {
            **{f"clickhouse.{t}": n for t, n in self.clickhouse_counts(ids).items()},
            **{f"relational.{t}": len(rows) for t, rows in relational_left.items()},
        }
        report.seconds = time.perf_counter() - started
        log.info("customer_erased", reference=reference, identities=len(ids), seconds=round(report.seconds, 3),
                 left=sum(report.remaining.values()))  # fmt: skip
        return report

    def _suppress(self, ids: list[str]) -> None:
        for identity in ids:
            digest = identity_digest(identity)
            self.producer.produce(SUPPRESSIONS.name, Suppression(identity_digest=digest).encode(), key=digest.encode())
        self.producer.flush_or_raise(30)
        self.suppressions.suppress(ids)

    def _delete_clickhouse(self, ids: list[str]) -> dict[str, int]:
        counts = self.clickhouse_counts(ids)
        for table, rows in counts.items():
            if not rows:
                continue
            target = f"{self.db}.{table}_local ON CLUSTER {self.cluster}" if self.cluster else f"{self.db}.{table}"
            self.client.command(
                f"DELETE FROM {target} WHERE {self._where(table)} SETTINGS {LIGHTWEIGHT}", parameters={"ids": ids}
            )
        return counts
