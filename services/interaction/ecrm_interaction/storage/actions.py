"""Actions and skipped decisions as the API reads them: what rules planned, with outcome and
reason. (Planning, claiming and finishing actions: :class:`Store`.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.storage.models import Action, SkippedDecision
from ecrm_interaction.storage.store import aware


def recent(
    session: Session,
    customer_id: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[Action]:
    """Actions, newest first, optionally of one customer, kind or status."""
    query = select(Action).order_by(Action.created_at.desc()).limit(limit)
    for column, value in ((Action.customer_id, customer_id), (Action.kind, kind), (Action.status, status)):
        if value is not None:
            query = query.where(column == value)
    return list(session.scalars(query))


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """Which decisions to list; ``reason`` matches a prefix (``frequency_cap`` finds every cap)."""

    customer_id: str | None = None
    rule_id: str | None = None
    kind: str | None = None
    status: str | None = None
    reason: str | None = None
    limit: int = 100


def decisions(session: Session, wanted: DecisionFilter = DecisionFilter()) -> list[Action | SkippedDecision]:
    """Actions and skipped decisions, newest first (a skip by its latest time), filtered. Skips
    have no ``kind`` and the status ``skipped``."""
    found: list[Action | SkippedDecision] = []
    if wanted.status != "skipped":
        query = select(Action).order_by(Action.created_at.desc()).limit(wanted.limit)
        for column, value in (
            (Action.customer_id, wanted.customer_id), (Action.rule_id, wanted.rule_id),
            (Action.kind, wanted.kind), (Action.status, wanted.status),
        ):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        if wanted.reason is not None:
            query = query.where(Action.reason.startswith(wanted.reason, autoescape=True))
        found += session.scalars(query)
    if wanted.status in (None, "skipped") and wanted.kind is None:
        skips = select(SkippedDecision).order_by(SkippedDecision.last_at.desc()).limit(wanted.limit)
        for column, value in (
            (SkippedDecision.customer_id, wanted.customer_id), (SkippedDecision.rule_id, wanted.rule_id),
        ):  # fmt: skip
            if value is not None:
                skips = skips.where(column == value)
        if wanted.reason is not None:
            skips = skips.where(SkippedDecision.reason.startswith(wanted.reason, autoescape=True))
        found += session.scalars(skips)

    def newest(row: Action | SkippedDecision) -> datetime:
        at = row.last_at if isinstance(row, SkippedDecision) else row.created_at
        return aware(at) or datetime.min.replace(tzinfo=UTC)

    return sorted(found, key=newest, reverse=True)[: wanted.limit]
