"""The aggregator's ClickHouse shell: insert events and profiles, read current profiles.

Clients are built with ``tz_mode="aware"``: every DateTime64 column is UTC, and comes back
as an aware datetime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from ecrm_aggregator.decode import PositionedEvent
from ecrm_aggregator.identity import IdentityLink, MergeRecord
from ecrm_aggregator.profile_state import ProfileState
from ecrm_aggregator.rows import (
    DEFINITION_COLUMNS,
    EVENT_COLUMNS,
    LINK_COLUMNS,
    MEMBERSHIP_COLUMNS,
    MERGE_COLUMNS,
    PROFILE_COLUMNS,
    SEGMENT_CHANGE_COLUMNS,
    link_from_row,
    link_row,
    merge_row,
    positioned_from_row,
    profile_from_row,
)
from ecrm_aggregator.segmentation import MembershipUpdate
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.clickhouse import clickhouse_client
from ecrm_schemas.segment_sql import SegmentQuery
from ecrm_schemas.segments import SegmentDefinition


def connect(settings: AggregatorSettings, database: str | None = None) -> Client:
    """A clickhouse-connect client for ``CLICKHOUSE_URL`` (http, https or chdb)."""
    return clickhouse_client(settings.clickhouse_url, settings.clickhouse_user, settings.clickhouse_password, database)


class ClickHouseStore:
    def __init__(self, client: Client, database: str) -> None:
        if client.tz_mode != "aware":
            raise ValueError('the store needs a client built with tz_mode="aware" (see connect())')
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

    def stored_positions(self, keys: Sequence[str], message_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Message id → (partition, offset) of those of ``message_ids`` already stored.

        ``keys`` are the ids the events were sent with: the table's sort key starts with them,
        so the look-up reads only those customers' rows.
        """
        if not message_ids:
            return {}
        result = self.client.query(
            f"SELECT message_id, source_partition, source_offset FROM {self.database}.events "
            "WHERE customer_id IN {keys:Array(String)} AND message_id IN {ids:Array(String)}",
            parameters={"keys": list(keys), "ids": list(message_ids)},
        )
        return {row[0]: (row[1], row[2]) for row in result.result_rows}

    def load_links(self, ids: Sequence[str]) -> dict[str, IdentityLink]:
        """The links of ``ids`` as anonymous ids, and of every anonymous id ever linked to one of
        ``ids`` as a user (read through the ``by_user`` projection), as they are now."""
        if not ids:
            return {}
        table = f"{self.database}.identity_links"
        result = self.client.query(
            f"SELECT {', '.join(LINK_COLUMNS)} FROM {table} FINAL WHERE anonymous_id IN {{ids:Array(String)}} "
            f"OR anonymous_id IN (SELECT anonymous_id FROM {table} WHERE user_id IN {{ids:Array(String)}})",
            parameters={"ids": list(ids)},
        )
        return {row[0]: link_from_row(row) for row in result.result_rows}

    def insert_identity(self, links: Sequence[IdentityLink], records: Sequence[MergeRecord], dedup_token: str) -> None:
        """Record new or changed links, then the merge log."""
        self._insert("identity_links", LINK_COLUMNS, [link_row(link) for link in links], dedup_token)
        self._insert("identity_merges", MERGE_COLUMNS, [merge_row(r) for r in records], dedup_token)

    def merge_log(self, customer_id: str) -> list[MergeRecord]:
        """Every merge, refusal and unmerge that involved ``customer_id``, oldest first."""
        result = self.client.query(
            f"SELECT {', '.join(MERGE_COLUMNS)} FROM {self.database}.identity_merges FINAL "
            "WHERE anonymous_id = {id:String} OR user_id = {id:String} ORDER BY at",
            parameters={"id": customer_id},
        )
        return [MergeRecord(*row) for row in result.result_rows]

    def load_history(self, keys: Sequence[str]) -> list[PositionedEvent]:
        """Every stored event sent with one of ``keys``, oldest first."""
        return self.load_histories({"": keys})[""]

    def load_histories(self, groups: Mapping[str, Sequence[str]]) -> dict[str, list[PositionedEvent]]:
        """For each group, every stored event sent with one of its keys, oldest first: one
        query for all of a batch's merges (a key belongs to one group)."""
        group_of = {key: group for group, keys in groups.items() for key in keys}
        histories: dict[str, list[PositionedEvent]] = {group: [] for group in groups}
        if not group_of:
            return histories
        result = self.client.query(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM {self.database}.events FINAL "
            "WHERE customer_id IN {keys:Array(String)} ORDER BY timestamp, source_partition, source_offset",
            parameters={"keys": sorted(group_of)},
        )
        key_column = EVENT_COLUMNS.index("customer_id")
        for row in result.result_rows:
            histories[group_of[row[key_column]]].append(positioned_from_row(row))
        return histories

    def segment_members(self, query: SegmentQuery, now: datetime) -> dict[str, set[str]]:
        """Run a membership query: customer → the segments they satisfy at ``now``."""
        result = self.client.query(query.sql, parameters={**query.parameters, "now": now})
        return {row[0]: set(row[1]) for row in result.result_rows}

    def stored_membership(
        self, customers: Sequence[str] | None = None, partitions: Sequence[int] | None = None
    ) -> dict[str, set[str]]:
        """customer → segments they are stored as members of, for ``customers``, or for the
        customers whose profile was last folded from one of ``partitions``."""
        parameters: dict[str, Any]
        if customers is not None:
            scope, parameters = "customer_id IN {ids:Array(String)}", {"ids": list(customers)}
        else:
            scope = (f"customer_id IN (SELECT customer_id FROM {self.database}.profiles FINAL "
                     "WHERE source_partition IN {parts:Array(Int32)})")  # fmt: skip
            parameters = {"parts": list(partitions or [])}
        result = self.client.query(
            f"SELECT customer_id, groupArray(segment_id) FROM {self.database}.segment_membership FINAL "
            f"WHERE is_member = 1 AND {scope} GROUP BY customer_id",
            parameters=parameters,
        )
        return {row[0]: set(row[1]) for row in result.result_rows}

    def insert_membership(self, update: MembershipUpdate, dedup_token: str) -> None:
        self._insert("segment_membership", MEMBERSHIP_COLUMNS, update.rows, dedup_token)
        self._insert("segment_changes", SEGMENT_CHANGE_COLUMNS, update.history, dedup_token)

    def record_definitions(self, definitions: Sequence[SegmentDefinition], deleted: Sequence[str]) -> None:
        """Keep the definitions in ClickHouse too, so data teams can join segment names."""
        now = datetime.now(UTC)
        rows = [[d.id, d.name, d.description, d.condition.model_dump_json(), 0, d.updated_at,
                 int(now.timestamp() * 1_000_000)] for d in definitions]  # fmt: skip
        rows += [[i, "", "", "", 1, now, int(now.timestamp() * 1_000_000)] for i in deleted]
        self._insert("segment_definitions", DEFINITION_COLUMNS, rows, f"definitions-{now.isoformat()}")

    def profiles_to_review(self, partitions: Sequence[int], before: datetime, limit: int) -> list[ProfileState]:
        """Current profiles last folded from ``partitions`` whose computed traits are older than ``before``."""
        result = self.client.query(
            f"SELECT {', '.join(PROFILE_COLUMNS)} FROM {self.database}.profiles FINAL "
            "WHERE merged_into = '' AND source_partition IN {parts:Array(Int32)} "
            "AND (traits_as_of IS NULL OR traits_as_of < {before:DateTime64(3, 'UTC')}) LIMIT {limit:UInt32}",
            parameters={"parts": list(partitions), "before": before, "limit": limit},
        )
        return [profile_from_row(row) for row in result.result_rows]

    def profile_versions(self, customer_ids: Sequence[str]) -> dict[str, int]:
        """The current version of each of ``customer_ids`` that has a profile (two narrow
        columns, no ``FINAL``: what :class:`~ecrm_aggregator.profile_cache.ProfileCache` checks)."""
        if not customer_ids:
            return {}
        result = self.client.query(
            f"SELECT customer_id, max(version) FROM {self.database}.profiles "
            "WHERE customer_id IN {ids:Array(String)} GROUP BY customer_id",
            parameters={"ids": list(customer_ids)},
        )
        return {customer_id: version for customer_id, version in result.result_rows}

    def load_profiles(self, customer_ids: Sequence[str]) -> dict[str, ProfileState]:
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
            profile = profile_from_row(row)
            profiles[profile.customer_id] = profile
        return profiles
