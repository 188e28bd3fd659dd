"""What the email executor reads of a batch's customers, one query per kind of fact:
where and whether they may be mailed (:func:`contacts`) and what they were sent lately
(:func:`recent_messages`); the same of one customer for the API's dry run and an action not
read with its batch (:func:`contact`, :func:`message_history`).

Functions take the caller's session and only read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.storage.bulk import chunks
from ecrm_interaction.storage.models import Action, AddressSuppression, Consent, Customer
from ecrm_interaction.storage.store import MARKETING
from ecrm_schemas.actions import ActionKind, ActionStatus

_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class ContactRow:
    """A customer's address, zone, unsubscribe, suppression and marketing consent by channel."""

    email: str | None
    timezone: str | None
    unsubscribed: bool
    suppressed: str | None
    """The suppression in force for ``email`` (or, without a stored address, the fallback one)."""
    consent: dict[str, bool]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """An action that reached a customer (``sent`` or ``done``)."""

    rule_id: str | None
    kind: str
    status: str
    category: str
    done_at: datetime


def contacts(session: Session, fallback: Mapping[str, str | None]) -> dict[str, ContactRow]:
    """The contact of each customer in ``fallback`` (customer id → the address to use when none is
    stored, e.g. the planned profile's); three queries per thousand customers."""
    ids = sorted(fallback)
    customers: dict[str, Customer] = {}
    consent: dict[str, dict[str, bool]] = {customer_id: {} for customer_id in ids}
    for chunk in chunks(ids, _CHUNK):
        customers.update(
            (c.customer_id, c) for c in session.scalars(select(Customer).where(Customer.customer_id.in_(chunk)))
        )
        rows = session.scalars(select(Consent).where(Consent.customer_id.in_(chunk), Consent.purpose == MARKETING))
        for given in rows:
            consent[given.customer_id][given.channel] = given.granted
    addresses = {
        customer_id: (customers[customer_id].email if customer_id in customers else None) or fallback[customer_id]
        for customer_id in ids
    }
    digests = sorted({address_digest(a) for a in addresses.values() if a})
    suppressed: dict[str, str] = {}
    for chunk in chunks(digests, _CHUNK):
        suppressions = session.scalars(
            select(AddressSuppression).where(
                AddressSuppression.address_digest.in_(chunk), AddressSuppression.lifted_at.is_(None)
            )
        )
        suppressed.update((row.address_digest, row.reason) for row in suppressions)
    found = {}
    for customer_id in ids:
        row = customers.get(customer_id)
        address = addresses[customer_id]
        suppression = suppressed.get(address_digest(address)) if address else None
        if row is None:
            found[customer_id] = ContactRow(None, None, False, suppression, consent[customer_id])
        else:
            unsubscribed = row.unsubscribed_at is not None
            found[customer_id] = ContactRow(row.email, row.timezone, unsubscribed, suppression, consent[customer_id])
    return found


def recent_messages(session: Session, customer_ids: Iterable[str], since: datetime) -> dict[str, list[SentMessage]]:
    """What reached each customer since ``since`` (actions ``sent`` or ``done``), one query per thousand."""
    ids = sorted(set(customer_ids))
    found: dict[str, list[SentMessage]] = {customer_id: [] for customer_id in ids}
    reached = (ActionStatus.SENT.value, ActionStatus.DONE.value)
    for chunk in chunks(ids, _CHUNK):
        rows = session.execute(
            select(
                Action.customer_id, Action.rule_id, Action.kind, Action.status, Action.category, Action.done_at
            ).where(Action.customer_id.in_(chunk), Action.status.in_(reached), Action.done_at >= since)
        )
        for customer_id, rule_id, kind, status, category, done_at in rows:
            if done_at is not None:
                found[customer_id].append(SentMessage(rule_id, kind, status, category, done_at))
    return found


def history_of(
    messages: Iterable[SentMessage], rule_id: str | None, since: datetime
) -> tuple[list[datetime], datetime | None]:
    """(marketing emails sent since ``since``, when ``rule_id`` last reached the customer since then),
    of one customer's :func:`recent_messages`: all a contact policy with a cooldown no longer than
    ``now - since`` needs (an older last message cannot be in its cooldown)."""
    sent = [m.done_at for m in messages if m.done_at >= since and m.kind == ActionKind.EMAIL
            and m.status == ActionStatus.SENT and m.category == MARKETING]  # fmt: skip
    last = [m.done_at for m in messages if rule_id is not None and m.done_at >= since and m.rule_id == rule_id]
    return sent, max(last, default=None)


def contact(session: Session, customer_id: str) -> ContactRow:
    """:func:`contacts` of one customer (without a fallback address)."""
    return contacts(session, {customer_id: None})[customer_id]


def message_history(
    session: Session, customer_id: str, rule_id: str | None, since: datetime
) -> tuple[list[datetime], datetime | None]:
    """:func:`history_of` the customer's :func:`recent_messages` since ``since``."""
    return history_of(recent_messages(session, [customer_id], since)[customer_id], rule_id, since)
