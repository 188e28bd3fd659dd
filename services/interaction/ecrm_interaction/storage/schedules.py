"""Scheduled rules' state: the last slot each fired, claimed by a conditional update so two
replicas never fire the same slot; and the audience a scheduled rule is planned for.

Functions take the caller's session; :func:`claim_slot` writes and does not commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecrm_interaction.storage.bulk import insert_ignore
from ecrm_interaction.storage.models import Customer, CustomerSegment, ScheduleState
from ecrm_interaction.storage.store import aware


def schedule_last(session: Session, rule_id: str) -> datetime | None:
    """The last slot the rule's schedule fired (None for a schedule not started yet)."""
    row = session.get(ScheduleState, rule_id)
    return aware(row.last_slot) if row else None


def claim_slot(session: Session, rule_id: str, previous: datetime | None, slot: datetime) -> bool:
    """Move a schedule from ``previous`` to ``slot``; False when another replica did it first."""
    if previous is None:
        return insert_ignore(session, ScheduleState, [{"rule_id": rule_id, "last_slot": slot}]) == 1
    result = session.execute(
        update(ScheduleState)
        .where(ScheduleState.rule_id == rule_id, ScheduleState.last_slot == previous)
        .values(last_slot=slot)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def audience(session: Session, segment_id: str | None, limit: int = 1_000_000) -> list[str]:
    """The members of ``segment_id``, or every customer with an address, in id order."""
    if segment_id is None:
        query = select(Customer.customer_id).where(Customer.email.is_not(None)).order_by(Customer.customer_id)
    else:
        query = (
            select(CustomerSegment.customer_id)
            .where(CustomerSegment.segment_id == segment_id)
            .order_by(CustomerSegment.customer_id)
        )
    return list(session.scalars(query.limit(limit)))
