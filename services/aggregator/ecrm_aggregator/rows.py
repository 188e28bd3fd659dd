"""Step 3: events and profiles as ClickHouse rows, and profiles back from rows (pure).

The column lists here are the contract with the migrations; a test inserts and reads back
through the real engine so the two cannot drift apart silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from operator import attrgetter
from typing import Any

import orjson

from ecrm_aggregator.decode import PositionedEvent
from ecrm_aggregator.identity import IdentityLink, MergeRecord
from ecrm_aggregator.profile_folding import customer_id_of
from ecrm_aggregator.profile_state import VIEW_COUNTS, ProfileState, Traits
from ecrm_schemas.events import (
    AliasEvent,
    GroupEvent,
    TrackEvent,
    event_properties,
    event_traits,
    view_category,
    view_name,
)
from ecrm_schemas.validation import validate_event

EVENT_COLUMNS = (
    "message_id", "customer_id", "user_id", "anonymous_id", "type", "event", "timestamp", "sent_at",
    "received_at", "properties", "traits", "context", "source_partition", "source_offset",
    # 0009_page_names_and_activity
    "name", "category",
)  # fmt: skip

COMPUTED_COLUMNS = (
    "rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment", "engagement_score", "nps_category", "nps_trend",
    "churn_ratio", "churn_risk", "lifecycle_stage", "loyalty_points", "loyalty_tier",
)  # fmt: skip
"""The columns of :class:`Traits` (its ``as_of`` is ``traits_as_of``); text traits store "" for none."""
TEXT_TRAITS = frozenset({"rfm_segment", "nps_category", "nps_trend", "churn_risk", "lifecycle_stage", "loyalty_tier"})

PROFILE_COLUMNS = (
    "customer_id", "user_id", "anonymous_id", "email", "traits", "traits_updated_at", "first_seen", "last_seen",
    "event_count", "event_counts", "page_views", "orders", "revenue", "email_sent", "email_opened",
    "email_clicked", "email_bounced", "surveys_answered", "nps_latest", "nps_at", "version",
    "source_partition", "source_offset",
    # 0003_profile_traits
    "nps_previous", "first_order_at", "last_order_at", "refunded", "last_active_at", "typical_interval_days",
    "engagement_raw", "engagement_at", "traits_as_of", *COMPUTED_COLUMNS,
    # 0004_identity
    "merged_into", "positions",
    # 0006_hot_path
    "recent_message_ids",
    # 0009_page_names_and_activity
    *VIEW_COUNTS[:2], "screen_views", *VIEW_COUNTS[2:], "activity_slots",
)  # fmt: skip


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode() if value else "{}"


def event_row(positioned: PositionedEvent) -> list[Any]:
    event = positioned.event
    properties = event_properties(event)
    if isinstance(event, AliasEvent):
        properties = {"previousId": event.previousId}
    elif isinstance(event, GroupEvent):
        properties = {"groupId": event.groupId}
    return [
        event.messageId,
        customer_id_of(positioned),
        event.userId or "",
        event.anonymousId or "",
        event.type,
        event.event if isinstance(event, TrackEvent) else "",
        event.timestamp,
        event.sentAt,
        event.receivedAt,
        _json(properties),
        _json(event_traits(event)),
        _json(event.context.model_dump(exclude_none=True)),
        positioned.partition,
        positioned.offset,
        view_name(event) or "",
        view_category(event) or "",
    ]


def profile_row(profile: ProfileState) -> list[Any]:
    return [
        profile.customer_id,
        profile.user_id or "",
        profile.anonymous_id or "",
        profile.email or "",
        _json(profile.traits),
        profile.traits_updated_at,
        profile.first_seen,
        profile.last_seen,
        profile.event_count,
        profile.event_counts,
        profile.page_views,
        profile.orders,
        profile.revenue,
        profile.email_sent,
        profile.email_opened,
        profile.email_clicked,
        profile.email_bounced,
        profile.surveys_answered,
        profile.nps_latest,
        profile.nps_at,
        profile.version,
        profile.source_partition,
        profile.source_offset,
        profile.nps_previous,
        profile.first_order_at,
        profile.last_order_at,
        profile.refunded,
        profile.last_active_at,
        profile.typical_interval_days,
        profile.engagement_raw,
        profile.engagement_at,
        *_computed_values(profile.computed),
        profile.merged_into or "",
        profile.positions,
        profile.recent_message_ids,
        profile.page_views_by_name,
        profile.page_views_by_category,
        profile.screen_views,
        profile.screen_views_by_name,
        profile.screen_views_by_category,
        profile.activity_slots,
    ]


_TRAIT_DEFAULTS = Traits(as_of=None)  # type: ignore[arg-type]


_computed_columns = attrgetter(*COMPUTED_COLUMNS)
_TEXT_POSITIONS = [i for i, name in enumerate(COMPUTED_COLUMNS) if name in TEXT_TRAITS]


def _computed_values(computed: Traits | None) -> list[Any]:
    """``traits_as_of`` and the computed columns."""
    source = _TRAIT_DEFAULTS if computed is None else computed
    values = list(_computed_columns(source))
    for i in _TEXT_POSITIONS:
        values[i] = values[i] or ""
    return [source.as_of, *values]


_NULLABLE_TEXT = ("user_id", "anonymous_id", "email", "merged_into")


def profile_from_row(row: Sequence[Any]) -> ProfileState:
    """A profile read back from ``profiles`` (datetimes must come back timezone-aware)."""
    values = dict(zip(PROFILE_COLUMNS, row, strict=True))
    for name in _NULLABLE_TEXT:
        values[name] = values[name] or None
    values["traits"] = orjson.loads(values["traits"] or "{}")
    values["revenue"] = Decimal(values["revenue"])
    values["refunded"] = Decimal(values["refunded"])
    values["event_counts"] = dict(values["event_counts"])
    values["positions"] = dict(values["positions"])
    values["recent_message_ids"] = list(values["recent_message_ids"])
    values["activity_slots"] = list(values["activity_slots"])
    for name in VIEW_COUNTS:
        values[name] = dict(values[name])
    computed = {name: values.pop(name) for name in COMPUTED_COLUMNS}
    as_of = values.pop("traits_as_of")
    state = ProfileState(**values)
    if as_of is not None:
        for name in TEXT_TRAITS:
            computed[name] = computed[name] or None
        state.computed = Traits(as_of=as_of, **computed)
    return state


def positioned_from_row(row: Sequence[Any]) -> PositionedEvent:
    """An event read back from the ``events`` table, for recomputing a profile."""
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    properties = orjson.loads(values["properties"] or "{}")
    body: dict[str, Any] = {
        "type": values["type"],
        "messageId": values["message_id"],
        "timestamp": values["timestamp"],
        "receivedAt": values["received_at"],
        "context": orjson.loads(values["context"] or "{}"),
    }
    if values["sent_at"] is not None:
        body["sentAt"] = values["sent_at"]
    for column, name in (("user_id", "userId"), ("anonymous_id", "anonymousId")):
        if values[column]:
            body[name] = values[column]
    if values["type"] == "alias":
        body["previousId"] = properties.pop("previousId")
    elif values["type"] == "group":
        body["groupId"] = properties.pop("groupId")
    if values["type"] in ("identify", "group"):
        body["traits"] = orjson.loads(values["traits"] or "{}")
    elif values["type"] != "alias":
        body["properties"] = properties
    if values["type"] == "track":
        body["event"] = values["event"]
    elif values["type"] in ("page", "screen"):
        body |= {key: values[key] for key in ("name", "category") if values[key]}
    return PositionedEvent(validate_event(body), values["source_partition"], values["source_offset"])


MEMBERSHIP_COLUMNS = ("segment_id", "customer_id", "is_member", "changed_at", "reason", "version")
"""The rows :class:`~ecrm_aggregator.segmentation.MembershipUpdate` builds, in this order."""
SEGMENT_CHANGE_COLUMNS = ("at", "segment_id", "segment_name", "customer_id", "change", "trigger", "reason", "event_id")
DEFINITION_COLUMNS = ("segment_id", "name", "description", "definition", "deleted", "updated_at", "version")

LINK_COLUMNS = ("anonymous_id", "user_id", "state", "message_id", "changed_at", "actor", "version", "user_partition")
MERGE_COLUMNS = ("at", "action", "anonymous_id", "user_id", "message_id", "actor", "reason")


def link_row(link: IdentityLink) -> list[Any]:
    version = int(link.changed_at.timestamp() * 1000)
    return [link.anonymous_id, link.user_id, link.state, link.message_id, link.changed_at, link.actor, version,
            link.user_partition]  # fmt: skip


def link_from_row(row: Sequence[Any]) -> IdentityLink:
    anonymous_id, user_id, state, message_id, changed_at, actor, _version, user_partition = row
    return IdentityLink(anonymous_id, user_id, state, message_id, changed_at, actor, user_partition)


def merge_row(record: MergeRecord) -> list[Any]:
    return [record.at, record.action, record.anonymous_id, record.user_id, record.message_id, record.actor,
            record.reason]  # fmt: skip
