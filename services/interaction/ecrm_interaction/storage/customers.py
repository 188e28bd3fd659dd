"""Customers as the API reads them: the stored profile, segment memberships and consents.
(The intake writes them: :class:`Store`.)"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.storage.models import Consent, Customer, CustomerSegment


def customer(session: Session, customer_id: str) -> Customer | None:
    return session.get(Customer, customer_id)


def segments(session: Session, customer_id: str) -> list[CustomerSegment]:
    """The segments the customer is in."""
    return list(session.scalars(select(CustomerSegment).where(CustomerSegment.customer_id == customer_id)))


def consents(session: Session, customer_id: str) -> list[Consent]:
    """Every consent of the customer (each channel and purpose)."""
    return list(session.scalars(select(Consent).where(Consent.customer_id == customer_id)))
