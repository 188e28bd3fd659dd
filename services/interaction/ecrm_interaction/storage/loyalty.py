"""The loyalty ledger and rewards as the API reads them. (Adding points and issuing rewards: :class:`Store`.)"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ecrm_interaction.storage.models import LoyaltyEntry, Reward


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


def balance(session: Session, customer_id: str) -> int:
    """The sum of the customer's ledger entries."""
    query = select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(LoyaltyEntry.customer_id == customer_id)
    return int(session.scalar(query) or 0)
