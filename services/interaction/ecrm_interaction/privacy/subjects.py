"""Privacy requests (GDPR/CCPA), the pure part: whose ids a customer has, what names them, the report.

A customer is a user id and the anonymous ids merged into it (or seen on its events); an
anonymous id that another user owns is never taken along. The shell
(:mod:`ecrm_interaction.privacy.requests`) reads and deletes; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

CLICKHOUSE_IDENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("customer_id", "user_id", "anonymous_id"),
    "profiles": ("customer_id", "user_id", "anonymous_id", "merged_into"),
    "identity_links": ("anonymous_id", "user_id"),
    "identity_merges": ("anonymous_id", "user_id"),
    "segment_membership": ("customer_id",),
    "segment_changes": ("customer_id",),
    "business_events": ("customer_id",),
    "customer_activity": ("customer_id",),
    "email_messages": ("customer_id",),
}
"""Every ClickHouse table that names a customer, and the columns that do (a drift test checks
this against the tables the migrations create)."""


@dataclass(frozen=True, slots=True)
class Link:
    """A row of ``identity_links``: ``anonymous_id`` merged into (or split from) ``user_id``."""

    anonymous_id: str
    user_id: str
    merged: bool


@dataclass(frozen=True, slots=True)
class Identities:
    customer_id: str
    anonymous_ids: tuple[str, ...]

    @property
    def all(self) -> list[str]:
        return [self.customer_id, *self.anonymous_ids]


def canonical_customer(requested: str, links: Iterable[Link]) -> str:
    """The user an id is merged into, or the id itself."""
    return next((link.user_id for link in links if link.anonymous_id == requested and link.merged), requested)


def customer_identities(customer_id: str, links: Iterable[Link], seen_on_events: Iterable[str]) -> Identities:
    """``customer_id``'s anonymous ids: those linked to it, and those on its own events that no
    other user has merged."""
    links = list(links)
    anonymous = {link.anonymous_id for link in links if link.user_id == customer_id}
    owned_elsewhere = {link.anonymous_id for link in links if link.user_id != customer_id and link.merged}
    anonymous |= {a for a in seen_on_events if a and a not in owned_elsewhere}
    anonymous.discard(customer_id)
    return Identities(customer_id, tuple(sorted(anonymous)))


def jsonable(value: Any) -> Any:
    """A stored value as JSON can hold it (datetimes as ISO 8601, decimals as strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def export_document(
    identities: Identities,
    clickhouse: dict[str, list[dict[str, Any]]],
    relational: dict[str, list[dict[str, Any]]],
    now: datetime,
) -> dict[str, Any]:
    """Everything stored about a customer, as one JSON document."""
    return {
        "customer_id": identities.customer_id,
        "identities": identities.all,
        "exported_at": now.isoformat(),
        "clickhouse": {table: jsonable(rows) for table, rows in clickhouse.items()},
        "relational": {table: jsonable(rows) for table, rows in relational.items()},
    }


@dataclass(slots=True)
class ErasureReport:
    """What an erasure removed. Names no identity: only how many there were."""

    identities: int
    clickhouse_rows: dict[str, int] = field(default_factory=dict)
    relational_rows: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    """Rows still found after the erasure (all zero when it worked)."""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "identities": self.identities,
            "clickhouse_rows": self.clickhouse_rows,
            "relational_rows": self.relational_rows,
            "remaining": self.remaining,
            "seconds": round(self.seconds, 3),
        }
