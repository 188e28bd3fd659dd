"""Customers as staff look them up and follow them, read from ClickHouse: the searchable list
(``customer_profiles``), a customer's ids and merges (``identity_links``, ``identity_merges``),
their timeline (``events``, ``segment_changes``, with the relational decisions beside them) and
the fate of each email sent to them (the email events naming its ``email_id``).

Every query is bounded: the list by ``LIMIT``/``OFFSET`` (the profiles view is read in
``last_seen`` order, never loaded whole), a customer's rows through the tables' sorting keys
(``events`` by ``customer_id``; ``segment_changes`` by ``(segment_id, customer_id)``: there
are few segment ids, so ClickHouse skips the granules without the customer on the second
key column alone, which read a tenth of the rows that naming every segment id did).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.delivery.recommendations import latest_events
from ecrm_schemas.catalog import CatalogEvent

NAME_TRAITS = ("name", "firstName", "first_name", "lastName", "last_name")

EMAIL_FATES: dict[str, str] = {
    CatalogEvent.EMAIL_SENT: "sent",
    CatalogEvent.EMAIL_DELIVERED: "delivered",
    CatalogEvent.EMAIL_OPENED: "opened",
    CatalogEvent.EMAIL_LINK_CLICKED: "clicked",
    CatalogEvent.EMAIL_BOUNCED: "bounced",
    CatalogEvent.EMAIL_MARKED_AS_SPAM: "complained",
}
"""The email events that tell what became of a message, and the word for each."""


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    """Which customers to list: ``q`` matches the id (exactly or as a prefix), the email or any
    trait value (case-insensitive, a part of it); ``trait`` is ``key=value`` (that trait exactly);
    the others match the segment the customer is in, the computed lifecycle stage, the RFM
    segment ("cell") and the loyalty tier."""

    q: str = ""
    trait: str = ""
    segment: str = ""
    stage: str = ""
    rfm: str = ""
    tier: str = ""


FILTER_SQL = {
    "q": "(customer_id = {q:String} OR startsWith(customer_id, {q:String})"
    " OR positionCaseInsensitive(email, {q:String}) > 0 OR positionCaseInsensitive(traits, {q:String}) > 0)",
    "trait_key": "JSONExtractString(traits, {trait_key:String}) = {trait_value:String}",
    "stage": "lifecycle_stage = {stage:String}",
    "rfm": "rfm_segment = {rfm:String}",
    "tier": "loyalty_tier = {tier:String}",
    "segment": "customer_id IN (SELECT customer_id FROM {db}.segment_membership FINAL"
    " WHERE segment_id = {segment:String} AND is_member = 1)",
}
"""The condition of each filter given (the others are left out of the query)."""

PAGE_SQL = (
    "SELECT customer_id, last_seen FROM {db}.customer_profiles WHERE {where} "
    "ORDER BY last_seen DESC, customer_id LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
)
"""The page's ids: only the columns the filters and the order need are read for every profile."""

DETAILS_SQL = (
    "SELECT customer_id, user_id, anonymous_id, email, traits, lifecycle_stage, rfm_segment, loyalty_tier,"
    " loyalty_points, orders, revenue, first_seen, last_seen, engagement_score"
    " FROM {db}.profiles FINAL WHERE customer_id IN {ids:Array(String)} AND merged_into = ''"
)
"""The listed customers' columns, for the page's ids only: ``profiles`` itself (what the
``customer_profiles`` view reads), so that the ids select the granules by its sorting key."""


def display_name(traits: dict[str, Any]) -> str | None:
    """The customer's name from their traits (``name``, else first and last name)."""
    if isinstance(traits.get("name"), str) and traits["name"].strip():
        return str(traits["name"]).strip()
    first = traits.get("firstName") or traits.get("first_name") or ""
    last = traits.get("lastName") or traits.get("last_name") or ""
    return f"{first} {last}".strip() or None


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None and value.year > 1970 else None


def _number(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def search(warehouse: Warehouse, wanted: CustomerFilter, limit: int, offset: int) -> dict[str, Any]:
    """One page of the customers ``wanted`` matches, the most recently seen first; ``next_offset``
    is None on the last page (one row more than asked is read to know)."""
    key, _, value = wanted.trait.partition("=")
    parameters = {
        "q": wanted.q.strip(), "trait_key": key.strip(), "trait_value": value.strip(), "stage": wanted.stage,
        "rfm": wanted.rfm, "tier": wanted.tier, "segment": wanted.segment, "limit": limit + 1, "offset": offset,
    }  # fmt: skip
    where = " AND ".join(sql for name, sql in FILTER_SQL.items() if parameters[name]) or "1"
    page = warehouse.rows(PAGE_SQL.replace("{where}", where), parameters)
    ids = [row["customer_id"] for row in page[:limit]]
    found = {row["customer_id"]: row for row in warehouse.rows(DETAILS_SQL, {"ids": ids})} if ids else {}
    rows = [found[i] for i in ids if i in found]
    customers = []
    for row in rows:
        traits = _json(row["traits"])
        customers.append(
            {
                "customer_id": row["customer_id"],
                "user_id": row["user_id"] or None,
                "anonymous_id": row["anonymous_id"] or None,
                "email": row["email"] or None,
                "name": display_name(traits),
                "lifecycle_stage": row["lifecycle_stage"] or None,
                "rfm_segment": row["rfm_segment"] or None,
                "loyalty_tier": row["loyalty_tier"] or None,
                "loyalty_points": row["loyalty_points"],
                "orders": row["orders"],
                "revenue": _number(row["revenue"]),
                "engagement_score": row["engagement_score"],
                "first_seen": _iso(row["first_seen"]),
                "last_seen": _iso(row["last_seen"]),
            }
        )
    return {
        "customers": customers,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(page) > limit else None,
    }


def keys_of(warehouse: Warehouse, customer_id: str) -> list[str]:
    """The customer's id and every anonymous id stitched to it."""
    rows = warehouse.rows(
        "SELECT anonymous_id FROM {db}.identity_links FINAL WHERE user_id = {c:String} AND state = 'merged'",
        {"c": customer_id},
    )
    return [customer_id, *sorted(r["anonymous_id"] for r in rows)]


def identity(warehouse: Warehouse, customer_id: str) -> dict[str, Any]:
    """The customer's ids: the anonymous ids stitched to them (or the user an anonymous id is
    stitched to), and every merge, refusal and unmerge that named them, newest first."""
    links = warehouse.rows(
        "SELECT anonymous_id, user_id, toString(state) AS state, changed_at, actor FROM {db}.identity_links FINAL "
        "WHERE user_id = {c:String} OR anonymous_id = {c:String} ORDER BY changed_at DESC LIMIT 200",
        {"c": customer_id},
    )
    merges = warehouse.rows(
        "SELECT at, toString(action) AS action, anonymous_id, user_id, actor, reason FROM {db}.identity_merges "
        "WHERE user_id = {c:String} OR anonymous_id = {c:String} ORDER BY at DESC LIMIT 200",
        {"c": customer_id},
    )
    return {
        "customer_id": customer_id,
        "links": [
            {
                "anonymous_id": r["anonymous_id"],
                "user_id": r["user_id"],
                "state": r["state"],
                "at": _iso(r["changed_at"]),
                "actor": r["actor"] or None,
            }
            for r in links
        ],
        "merges": [
            {
                "at": _iso(r["at"]),
                "action": r["action"],
                "anonymous_id": r["anonymous_id"],
                "user_id": r["user_id"],
                "actor": r["actor"] or None,
                "reason": r["reason"] or None,
            }
            for r in merges
        ],
    }


def _event_title(row: dict[str, Any]) -> str:
    if row["type"] == "track":
        return str(row["event"])
    if row["type"] in ("page", "screen"):
        return f"{'Viewed' if row['type'] == 'page' else 'Opened'} {row['type']} {row['name'] or ''}".strip()
    return row["type"].title()


def _event_detail(row: dict[str, Any]) -> str:
    """What of the event matters to a person: a few of its properties (or traits), in words."""
    values = _json(row["traits"] if row["type"] in ("identify", "group") else row["properties"])
    shown = [f"{key}: {value}" for key, value in values.items() if isinstance(value, str | int | float | bool)]
    return ", ".join(shown[:6])


def events(warehouse: Warehouse, keys: list[str], limit: int) -> list[dict[str, Any]]:
    """The latest ``limit`` events of the customer's ids, newest first, as timeline items."""
    rows = latest_events(warehouse.rows, "message_id, type, event, timestamp, properties, traits, name", keys, limit)
    return [
        {"at": _iso(r["timestamp"]), "kind": "event", "title": _event_title(r), "detail": _event_detail(r),
         "reason": None, "ref": r["message_id"]}
        for r in rows
    ]  # fmt: skip


def segment_changes(warehouse: Warehouse, customer_id: str, limit: int) -> list[dict[str, Any]]:
    """The customer's latest segment entries and exits with the reason of each, newest first."""
    rows = warehouse.rows(
        "SELECT at, segment_id, segment_name, toString(change) AS change, trigger, reason FROM {db}.segment_changes "
        "PREWHERE customer_id = {c:String} "
        "ORDER BY at DESC LIMIT {limit:UInt32}",
        {"c": customer_id, "limit": limit},
    )
    return [
        {"at": _iso(r["at"]), "kind": "segment",
         "title": f"{'Entered' if r['change'] == 'entered' else 'Left'} segment {r['segment_name'] or r['segment_id']}",
         "detail": f"on {r['trigger']}" if r["trigger"] else "", "reason": r["reason"] or None, "ref": r["segment_id"]}
        for r in rows
    ]  # fmt: skip


def email_fates(
    warehouse: Warehouse, keys: list[str], email_ids: list[str], since: datetime | None = None
) -> dict[str, dict[str, str | None]]:
    """For each of ``email_ids``: the first time each fate happened (``delivered``, ``opened``,
    ``clicked``, ``bounced``…), from the email events of the customer's ids (those from
    ``since`` on, when given: the fates of emails planned then cannot be older, and the
    partitions before it are not read). ``PREWHERE`` names the narrow columns that find the
    customer's email events: ClickHouse's own choice also moved the ``properties`` test there,
    reading that wide column for every row of the granules (twice the time)."""
    if not email_ids:
        return {}
    rows = warehouse.rows(
        "SELECT JSONExtractString(properties, 'email_id') AS email_id, event, min(timestamp) AS first_at "
        "FROM {db}.events PREWHERE customer_id IN {keys:Array(String)} AND type = 'track' "
        "AND event IN {names:Array(String)} AND timestamp >= {since:DateTime64(3, 'UTC')} "
        "WHERE email_id IN {ids:Array(String)} GROUP BY email_id, event",
        {"keys": keys, "names": list(EMAIL_FATES), "ids": email_ids, "since": since or datetime(1970, 1, 1)},
    )
    fates: dict[str, dict[str, str | None]] = {}
    for r in rows:
        fates.setdefault(r["email_id"], {})[EMAIL_FATES[r["event"]]] = _iso(r["first_at"])
    return fates
