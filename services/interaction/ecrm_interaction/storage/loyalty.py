"""The loyalty ledger, set-based: balances and used entry keys read for a batch of customers at
once, entries written with the outbox events that report them. Every function takes the caller's session.

The loyalty ledger and rewards as the API reads them; one customer's points added, a reward issued."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from ecrm_interaction.engine.triggers import OWN_EVENTS
from ecrm_interaction.storage import outbox
from ecrm_interaction.storage.bulk import among, chunks, insert_ignore, table_of, unnest_insert, upsert
from ecrm_interaction.storage.models import Customer, LoyaltyBalance, LoyaltyEntry, Reward
from ecrm_schemas.catalog import CatalogEvent


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: str
    customer_id: str
    points: int
    reason: str
    rule_id: str | None
    dedup_key: str
    at: datetime


def read_balances(session: Session, customer_ids: Iterable[str]) -> dict[str, int]:
    """Each customer's balance (the sum of their entries; customers without any are missing)."""
    c, found = table_of(LoyaltyEntry).c, {}
    for part in chunks(sorted(set(customer_ids))):
        query = (
            select(c.customer_id, func.sum(c.points)).where(among(session, c.customer_id, part)).group_by(c.customer_id)
        )
        found.update({customer_id: int(total or 0) for customer_id, total in session.execute(query)})
    return found


def used_keys(session: Session, dedup_keys: Iterable[str]) -> set[str]:
    """Which of these entry keys the ledger holds already."""
    c, found = table_of(LoyaltyEntry).c, set[str]()
    for part in chunks(sorted(set(dedup_keys))):
        found.update(session.scalars(select(c.dedup_key).where(among(session, c.dedup_key, part))))
    return found


def add_entries(session: Session, entries: Iterable[LedgerEntry]) -> None:
    """Write ledger entries (one whose key is used already is left out), each reported by a
    ``Loyalty Points Awarded`` outbox event."""
    rows = list(entries)
    if not rows:
        return
    ledger = [
        {"id": e.id, "customer_id": e.customer_id, "points": e.points, "reason": e.reason, "rule_id": e.rule_id,
         "dedup_key": e.dedup_key, "at": e.at}
        for e in rows
    ]  # fmt: skip
    table = table_of(LoyaltyEntry)
    if session.get_bind().dialect.name == "postgresql":
        columns = ("id", "customer_id", "points", "reason", "rule_id", "dedup_key", "at")
        tuples = [tuple(row[c] for c in columns) for row in ledger]
        added = {r[0] for r in unnest_insert(session, table, columns, tuples, "ON CONFLICT DO NOTHING RETURNING id")}
    else:
        statement = upsert(session, table).on_conflict_do_nothing().returning(table.c.id)
        added = set(session.scalars(statement, ledger))
    gained: dict[str, int] = {}
    for e in rows:
        if e.id in added:
            gained[e.customer_id] = gained.get(e.customer_id, 0) + e.points
    _add_to_balances(session, gained)
    outbox.add_events(session, [_event(e) for e in rows if e.id in added])


def _add_to_balances(session: Session, gained: dict[str, int]) -> None:
    """Add the points just entered to each customer's kept balance (its row made at their first
    entry), in customer order (two transactions lock the rows in the same order)."""
    table = table_of(LoyaltyBalance)
    for part in chunks(sorted(gained)):
        statement = upsert(session, table).values([{"customer_id": c, "points": gained[c]} for c in part])
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.customer_id], set_={"points": table.c.points + statement.excluded.points}
        )
        session.execute(statement)


def _event(entry: LedgerEntry) -> outbox.OutboxRow:
    properties = {"points": entry.points, "reason": entry.reason[:200] or "points", "rule_id": entry.rule_id}
    return (CatalogEvent.LOYALTY_POINTS_AWARDED, entry.customer_id, f"{OWN_EVENTS}loyalty-{entry.id}", properties,
            entry.at)  # fmt: skip


class LoyaltyLedger(NamedTuple):
    balance: int
    entries: list[LoyaltyEntry]
    """The newest entries, newest first."""
    rewards: list[Reward]
    """Every reward issued, newest first."""


def ledger(session: Session, customer_id: str, limit: int = 20) -> LoyaltyLedger:
    """The customer's balance, latest ``limit`` ledger entries and rewards."""
    entries = session.scalars(
        select(LoyaltyEntry)
        .where(LoyaltyEntry.customer_id == customer_id)
        .order_by(LoyaltyEntry.at.desc())
        .limit(limit)
    )
    rewards = session.scalars(select(Reward).where(Reward.customer_id == customer_id).order_by(Reward.issued_at.desc()))
    return LoyaltyLedger(balance(session, customer_id), list(entries), list(rewards))


def balances(session: Session, customer_ids: Iterable[str]) -> dict[str, int]:
    """:func:`read_balances` of every one of these customers, 0 for those without entries."""
    ids = set(customer_ids)
    return dict.fromkeys(ids, 0) | read_balances(session, ids)


def balance(session: Session, customer_id: str) -> int:
    """The sum of the customer's ledger entries."""
    query = select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(LoyaltyEntry.customer_id == customer_id)
    return int(session.scalar(query) or 0)


def add_points(
    session: Session, customer_id: str, points: int, reason: str, dedup_key: str, rule_id: str | None, at: datetime
) -> int | None:
    """Add a ledger entry once per ``dedup_key``; returns the points it added (a balance never
    goes below 0: a debit takes at most what is there), None when the key was used already.
    The entry is reported as a ``Loyalty Points Awarded`` event (the balance, as of when it is
    published: :func:`ecrm_interaction.delivery.outbox_relay.outbox_event`)."""
    if points < 0:
        points = max(points, -balance(session, customer_id))
    entry_id = str(uuid.uuid4())
    row = {"id": entry_id, "customer_id": customer_id, "points": points, "reason": reason, "rule_id": rule_id,
           "dedup_key": dedup_key, "at": at}  # fmt: skip
    if insert_ignore(session, LoyaltyEntry, [row]) != 1:
        return None
    _add_to_balances(session, {customer_id: points})
    properties = {"points": points, "reason": reason[:200] or "points", "rule_id": rule_id}
    message_id = f"{OWN_EVENTS}loyalty-{entry_id}"
    outbox.add_event(session, CatalogEvent.LOYALTY_POINTS_AWARDED, customer_id, message_id, properties, at)
    return points


def issue_reward(
    session: Session,
    customer_id: str,
    reward: str,
    code: str,
    points_cost: int,
    dedup_key: str,
    rule_id: str | None,
    at: datetime,
) -> bool:
    """Record a reward issued to the customer, once per ``dedup_key``; whether it was new."""
    row = {"id": str(uuid.uuid4()), "customer_id": customer_id, "reward": reward, "code": code,
           "points_cost": points_cost, "rule_id": rule_id, "dedup_key": dedup_key, "issued_at": at}  # fmt: skip
    return insert_ignore(session, Reward, [row]) == 1


def members_per_tier(session: Session, floors: list[tuple[str, int]]) -> dict[str, int]:
    """How many customers are in each tier (``floors``: each tier's name and least points,
    ascending from 0), counted in the database from the kept balances (one row per customer
    with points); a known customer without any entry has 0 points (the first tier)."""
    balances = table_of(LoyaltyBalance)
    b = balances.c
    steps = [(b.points >= least, name) for name, least in reversed(floors[1:])]
    tier = case(*steps, else_=floors[0][0]) if steps else literal(floors[0][0])
    tiers = select(tier.label("tier")).select_from(balances).subquery()
    counted: dict[str, int] = dict(session.execute(select(tiers.c.tier, func.count()).group_by(tiers.c.tier)).all())
    without_entries = (
        select(func.count())
        .select_from(Customer)
        .where(~select(b.customer_id).where(b.customer_id == Customer.customer_id).exists())
    )
    counts = {name: int(counted.get(name, 0)) for name, _ in floors}
    counts[floors[0][0]] += int(session.scalar(without_entries) or 0)
    return counts


class RewardCount(NamedTuple):
    reward: str
    issued: int
    points: int
    """The points they cost, all together."""
    last_issued_at: datetime


def rewards_issued(session: Session, limit: int = 20) -> tuple[list[RewardCount], list[Reward]]:
    """How many of each reward were issued (most issued first) and the latest ``limit`` issued."""
    counts = session.execute(
        select(Reward.reward, func.count(), func.coalesce(func.sum(Reward.points_cost), 0), func.max(Reward.issued_at))
        .group_by(Reward.reward)
        .order_by(func.count().desc(), Reward.reward)
    )
    recent = session.scalars(select(Reward).order_by(Reward.issued_at.desc(), Reward.id).limit(limit))
    return [RewardCount(r, int(n), int(p), at) for r, n, p, at in counts], list(recent)
