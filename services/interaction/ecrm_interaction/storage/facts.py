"""What the rule engine knows of one customer outside a consumed batch (a dry run, a schedule's
firing, a tier crossed by a rule's points): their stored profile, segments and marketing consent,
and when a rule last acted for them. The intake reads the same for a whole batch at once
(:mod:`ecrm_interaction.storage.customers`, :func:`ecrm_interaction.storage.actions.read_last_acted`).

Functions take the caller's session and only read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ecrm_interaction.storage import customers
from ecrm_interaction.storage.models import Action, Consent, Customer, CustomerSegment
from ecrm_interaction.storage.store import MARKETING, aware
from ecrm_schemas.actions import ActionStatus


class StoredFacts(NamedTuple):
    profile: dict[str, Any] | None
    """The stored profile (None for a customer not seen yet)."""
    segments: frozenset[str]
    consent: dict[str, bool]
    """Marketing consent by channel."""


def facts_of(session: Session, customer_id: str) -> StoredFacts:
    """The stored profile, segments and marketing consent of a customer."""
    row = session.get(Customer, customer_id)
    profile = orjson.loads(row.profile) if row is not None and row.profile else None
    segments = frozenset(
        session.scalars(select(CustomerSegment.segment_id).where(CustomerSegment.customer_id == customer_id)).all()
    )
    consents = session.scalars(select(Consent).where(Consent.customer_id == customer_id, Consent.purpose == MARKETING))
    return StoredFacts(profile, segments, {c.channel: c.granted for c in consents})


def rule_last_acted(session: Session, rule_id: str, customer_id: str) -> datetime | None:
    """When the rule last planned something for the customer that was not cancelled or suppressed."""
    at = session.scalar(
        select(func.max(Action.created_at)).where(
            Action.rule_id == rule_id,
            Action.customer_id == customer_id,
            Action.status.not_in((ActionStatus.CANCELLED.value, ActionStatus.SUPPRESSED.value)),
        )
    )
    return aware(at)


def facts_of_many(session: Session, customer_ids: Iterable[str]) -> dict[str, StoredFacts]:
    """:func:`facts_of` of each of these customers, one query per kind of fact (per chunk of ids)."""
    ids = sorted(set(customer_ids))
    rows = customers.read_customers(session, ids)
    segments = customers.read_segments(session, ids)
    consents = customers.read_consents(session, ids)
    found = {}
    for customer_id in ids:
        row = rows.get(customer_id)
        profile = orjson.loads(row.profile) if row is not None and row.profile else None
        consent = {c.channel: c.granted for c in consents.get(customer_id, ()) if c.purpose == MARKETING}
        found[customer_id] = StoredFacts(profile, frozenset(segments.get(customer_id, ())), consent)
    return found
