"""Broadcasts: what a marketer creates, who it reaches, and its messages as ``actions`` rows.

A broadcast's messages are ordinary email actions (dedup key ``broadcast:<id>:<customer>``,
no rule), due at the send rate from its start: the dispatcher sends them with its guarantees
(once per key, the contact policy again at the moment of sending, tracking, unsubscribe
headers). Pausing gives its open messages a due time no clock reaches (:data:`PAUSED_DUE`);
resuming gives them due times again, from now, at the rate; cancelling cancels them.

The audience comes from ``customer_segments``, the service's own copy of segment membership
(the intake keeps it from the aggregator's segment events), beside the consents, suppressions
and sent messages the policy reads: the count shown and the rows scheduled are read alike,
in one transaction, from one store.

Functions take the caller's session and never commit; every change is audited in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from ecrm_interaction.engine.broadcasts import EXCLUDED, HOLDOUT, Audience, Member, Variant, dedup_key, due_times
from ecrm_interaction.engine.contact_policy import Contact, History
from ecrm_interaction.storage import audit
from ecrm_interaction.storage.actions import NewAction, insert_actions
from ecrm_interaction.storage.bulk import table_of
from ecrm_interaction.storage.contacts import contacts, history_of, recent_messages
from ecrm_interaction.storage.models import Action, Broadcast, BroadcastRecipient, CustomerSegment
from ecrm_interaction.storage.outbox import stored_profiles
from ecrm_schemas.actions import OPEN, ActionKind, ActionStatus

PAUSED_DUE = datetime(9000, 1, 1, tzinfo=UTC)
"""The due time of a paused broadcast's messages: they stay ``pending``, and no clock reaches it."""
CANCELLED_REASON = "broadcast_cancelled"
STORED_STATUSES = ("draft", "scheduled", "paused", "cancelled")
"""Statuses kept in the row; ``sending`` and ``done`` are read (:func:`status_of`)."""


@dataclass(frozen=True, slots=True)
class Draft:
    """What a marketer sets (created or changed while a draft)."""

    name: str
    segment_id: str
    template_id: str | None
    variants: Sequence[Variant]
    holdout_percent: int
    winner_metric: str
    rate_per_minute: int
    scheduled_at: datetime | None


def variants_of(row: Broadcast) -> list[Variant]:
    return [Variant(v["name"], v["template"], v["share"]) for v in orjson.loads(row.variants)]


def _encode(variants: Sequence[Variant]) -> str:
    return orjson.dumps([{"name": v.name, "template": v.template, "share": v.share} for v in variants]).decode()


def _apply(row: Broadcast, draft: Draft) -> None:
    row.name, row.segment_id, row.template_id = draft.name, draft.segment_id, draft.template_id
    row.variants, row.holdout_percent = _encode(draft.variants), draft.holdout_percent
    row.winner_metric, row.rate_per_minute, row.scheduled_at = (
        draft.winner_metric,
        draft.rate_per_minute,
        draft.scheduled_at,
    )


def _detail(draft: Draft) -> dict[str, Any]:
    return {"name": draft.name, "segment_id": draft.segment_id, "variants": orjson.loads(_encode(draft.variants)),
            "holdout_percent": draft.holdout_percent, "winner_metric": draft.winner_metric,
            "rate_per_minute": draft.rate_per_minute, "scheduled_at": draft.scheduled_at}  # fmt: skip


def create(session: Session, draft: Draft, actor: str, now: datetime) -> Broadcast:
    row = Broadcast(id=str(uuid.uuid4()), status="draft", counts="{}", created_by=actor, created_at=now, updated_at=now)
    _apply(row, draft)
    session.add(row)
    audit.record(session, actor, "create", "broadcast", row.id, _detail(draft))
    session.flush()
    return row


def change(session: Session, row: Broadcast, draft: Draft, actor: str) -> Broadcast:
    """Change a draft (the caller checks it is one)."""
    _apply(row, draft)
    audit.record(session, actor, "update", "broadcast", row.id, _detail(draft))
    session.flush()
    return row


def get(session: Session, broadcast_id: str) -> Broadcast | None:
    return session.get(Broadcast, broadcast_id)


def newest(session: Session, limit: int = 100) -> list[Broadcast]:
    return list(session.scalars(select(Broadcast).order_by(Broadcast.created_at.desc()).limit(limit)))


def segment_known(session: Session, segment_id: str) -> bool:
    """Whether any customer is (or was kept as) a member of the segment."""
    found = session.scalar(select(CustomerSegment.customer_id).where(CustomerSegment.segment_id == segment_id).limit(1))
    return found is not None


def membership(segment_id: str) -> Select[str]:
    """The query of the segment's members now, by customer id."""
    return select(CustomerSegment.customer_id).where(CustomerSegment.segment_id == segment_id)


def policy_members(session: Session, segment_id: str, at: datetime, window: timedelta) -> list[Member]:
    """The segment's members as the email executor judges them (the stored contact, its address
    the stored one else the profile's; the marketing messages sent in the longest cap's
    ``window``), by customer id: a few queries joined on the membership, whatever its size."""
    among = membership(segment_id)
    ids = list(session.scalars(among.order_by(CustomerSegment.customer_id)))
    since = at - window
    rows = contacts(session, dict.fromkeys(ids), among)
    profiles = stored_profiles(session, [c for c in ids if not rows[c].email])  # only where no address is kept
    sent = recent_messages(session, ids, since, among)
    found: list[Member] = []
    for customer_id in ids:
        row = rows[customer_id]
        address = row.email or (profiles.get(customer_id) or {}).get("email")
        contact = Contact(address, row.timezone, row.consent.get("email"), row.unsubscribed, row.suppressed)
        history = history_of(sent[customer_id], None, since)[0] if sent[customer_id] else []
        found.append(Member(customer_id, contact, History(history)))
    return found


def counts_of(audience: Audience) -> dict[str, Any]:
    return {"members": audience.members, "excluded": dict(audience.excluded), "groups": dict(audience.groups),
            "holdout": audience.groups.get(HOLDOUT, 0), "deferred": audience.deferred,
            "to_send": audience.to_send}  # fmt: skip


def keep_count(
    session: Session, row: Broadcast, audience: Audience, at: datetime, now: datetime, actor: str | None = None
) -> dict[str, Any]:
    """Keep a draft's audience as counted ``now`` for a send at ``at`` (until it is counted
    again); audited when ``actor`` asked for it (a save is audited as the save)."""
    kept = {"computed_at": at.isoformat(), "counted_at": now.isoformat(), **counts_of(audience)}
    row.counts = orjson.dumps(kept).decode()
    if actor is not None:
        audit.record(session, actor, "count", "broadcast", row.id, counts_of(audience))
    session.flush()
    return kept


def schedule(session: Session, row: Broadcast, audience: Audience, start: datetime, actor: str, now: datetime) -> int:
    """Keep where each member was placed and create the messages, due at the rate from ``start``;
    how many messages were created."""
    templates = {v.name: v.template for v in variants_of(row)}
    sent = [p for p in audience.placed if p.group not in (HOLDOUT, EXCLUDED)]
    due = iter(due_times(start, len(sent), row.rate_per_minute))
    actions: list[NewAction] = []
    recipients: list[dict[str, Any]] = []
    for position, placed in enumerate(audience.placed):
        action_id = None
        if placed.group not in (HOLDOUT, EXCLUDED):
            action_id = str(uuid.uuid4())
            payload = {"action": {"kind": ActionKind.EMAIL.value, "template": templates[placed.group]},
                       "rule_name": row.name, "reason": f"broadcast {row.name}",
                       "broadcast": {"id": row.id, "variant": placed.group}}  # fmt: skip
            message = NewAction(
                id=action_id, dedup_key=dedup_key(row.id, placed.customer_id), rule_id=None,  # type: ignore[arg-type]
                customer_id=placed.customer_id, kind=ActionKind.EMAIL.value, category="marketing",
                cause=f"b:{row.id}", status=ActionStatus.PENDING.value, due_at=next(due),
                payload=orjson.dumps(payload).decode(), reason=None, done_at=None, created_at=now,
            )  # fmt: skip
            actions.append(message)
        recipients.append({"broadcast_id": row.id, "customer_id": placed.customer_id, "position": position,
                           "variant": placed.group, "reason": placed.reason, "action_id": action_id})  # fmt: skip
    if recipients:
        session.execute(table_of(BroadcastRecipient).insert(), recipients)
    created = insert_actions(session, actions)
    row.status, row.started_at, row.counts = "scheduled", start, orjson.dumps(counts_of(audience)).decode()
    audit.record(session, actor, "schedule", "broadcast", row.id, {"start": start, **counts_of(audience)})
    session.flush()
    return created


def _action_ids(broadcast_id: str):  # type: ignore[no-untyped-def]
    return select(BroadcastRecipient.action_id).where(
        BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.action_id.is_not(None)
    )


def pause(session: Session, row: Broadcast, actor: str) -> int:
    """Hold its messages not sent yet; how many."""
    held = session.execute(
        update(Action)
        .where(Action.id.in_(_action_ids(row.id)), Action.status.in_(OPEN))
        .values(due_at=PAUSED_DUE, status=ActionStatus.PENDING.value)
        .returning(Action.id)
        .execution_options(synchronize_session=False)
    ).all()
    row.status = "paused"
    audit.record(session, actor, "pause", "broadcast", row.id, {"held": len(held)})
    session.flush()
    return len(held)


def resume(session: Session, row: Broadcast, actor: str, now: datetime) -> int:
    """Let its held messages go again, in their order, at the rate from now (or its start); how many."""
    query = (
        select(Action.id)
        .join(BroadcastRecipient, BroadcastRecipient.action_id == Action.id)
        .where(BroadcastRecipient.broadcast_id == row.id, Action.status.in_(OPEN))
        .order_by(BroadcastRecipient.position)
    )
    held = list(session.scalars(query))
    start = max(now, row.started_at or now)
    if held:
        statement = update(table_of(Action)).where(table_of(Action).c.id == bindparam("b_id"))
        statement = statement.values(due_at=bindparam("b_due"), status=ActionStatus.PENDING.value)
        rows = [
            {"b_id": i, "b_due": due}
            for i, due in zip(held, due_times(start, len(held), row.rate_per_minute), strict=True)
        ]
        session.execute(statement, rows)
    row.status = "scheduled"
    audit.record(session, actor, "resume", "broadcast", row.id, {"released": len(held), "from": start})
    session.flush()
    return len(held)


def cancel(session: Session, row: Broadcast, actor: str, now: datetime) -> int:
    """Cancel its messages not sent yet; how many."""
    cancelled = session.execute(
        update(Action)
        .where(Action.id.in_(_action_ids(row.id)), Action.status.in_(OPEN))
        .values(status=ActionStatus.CANCELLED.value, reason=CANCELLED_REASON, done_at=now, lease_until=None)
        .returning(Action.id)
        .execution_options(synchronize_session=False)
    ).all()
    row.status = "cancelled"
    audit.record(session, actor, "cancel", "broadcast", row.id, {"cancelled": len(cancelled)})
    session.flush()
    return len(cancelled)


def progress(session: Session, broadcast_id: str) -> dict[str, dict[str, int]]:
    """Its messages by variant and status (``pending`` … ``sent``), and ``holdout``/``excluded`` members."""
    found: dict[str, dict[str, int]] = {}
    query = (
        select(BroadcastRecipient.variant, Action.status, func.count())
        .join(Action, Action.id == BroadcastRecipient.action_id)
        .where(BroadcastRecipient.broadcast_id == broadcast_id)
        .group_by(BroadcastRecipient.variant, Action.status)
    )
    for variant, status, count in session.execute(query):
        found.setdefault(variant, {})[status] = count
    unsent = (
        select(BroadcastRecipient.variant, func.count())
        .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.action_id.is_(None))
        .group_by(BroadcastRecipient.variant)
    )
    for variant, count in session.execute(unsent):
        found.setdefault(variant, {})["members"] = count
    return found


def open_messages(counts: dict[str, dict[str, int]]) -> int:
    return sum(n for statuses in counts.values() for status, n in statuses.items() if status in OPEN)


def status_of(row: Broadcast, counts: dict[str, dict[str, int]], now: datetime) -> str:
    """The status people see: a scheduled broadcast is ``sending`` from its start while messages
    remain, then ``done``."""
    if row.status != "scheduled":
        return row.status
    if row.started_at is not None and row.started_at > now:
        return "scheduled"
    return "sending" if open_messages(counts) else "done"


@dataclass(frozen=True, slots=True)
class Recipient:
    customer_id: str
    variant: str
    action_id: str | None
    status: str | None
    """Its message's status (None for the holdout and the excluded)."""


def recipients(session: Session, broadcast_id: str) -> list[Recipient]:
    """Every member as placed, with their message's status, in placement order."""
    query = (
        select(BroadcastRecipient.customer_id, BroadcastRecipient.variant, BroadcastRecipient.action_id, Action.status)
        .outerjoin(Action, Action.id == BroadcastRecipient.action_id)
        .where(BroadcastRecipient.broadcast_id == broadcast_id)
        .order_by(BroadcastRecipient.position)
    )
    return [Recipient(*r) for r in session.execute(query)]
