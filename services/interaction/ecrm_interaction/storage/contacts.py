"""What the email executor reads of a batch's customers, one query per kind of fact:
where and whether they may be mailed (:func:`contacts`) and what they were sent lately
(:func:`recent_messages`); the same of one customer for the API's dry run and an action not
read with its batch (:func:`contact`, :func:`message_history`).

Functions take the caller's session and only read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
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


def _selecting(column: Any, ids: Sequence[str], among: Select[str] | None) -> list[ColumnElement[bool]]:
    """The conditions that pick ``ids`` by ``column``, a query each: a thousand ids at a time,
    or one naming ``among`` (the query of those ids, e.g. a segment's membership: the database
    joins it, however many they are, and no id travels as a parameter)."""
    if among is not None:
        return [column.in_(among)]
    return [column.in_(chunk) for chunk in chunks(ids, _CHUNK)]


def contacts(
    session: Session, fallback: Mapping[str, str | None], among: Select[str] | None = None
) -> dict[str, ContactRow]:
    """The contact of each customer in ``fallback`` (customer id → the address to use when none is
    stored, e.g. the planned profile's); three queries per thousand customers, or three in all
    with ``among`` (the query of exactly those ids), which also reads the suppressions in force
    whole: far fewer than the addresses of an audience that large."""
    ids = sorted(fallback)
    stored: dict[str, tuple[str | None, str | None, bool]] = {}
    consent: dict[str, dict[str, bool]] = {customer_id: {} for customer_id in ids}
    customer_columns = (Customer.customer_id, Customer.email, Customer.timezone, Customer.unsubscribed_at)
    for condition in _selecting(Customer.customer_id, ids, among):
        rows = session.execute(select(*customer_columns).where(condition))
        for customer_id, email, timezone, unsubscribed_at in rows:
            stored[customer_id] = (email, timezone, unsubscribed_at is not None)
    consent_columns = (Consent.customer_id, Consent.channel, Consent.granted)
    for condition in _selecting(Consent.customer_id, ids, among):
        for customer_id, channel, granted in session.execute(
            select(*consent_columns).where(condition, Consent.purpose == MARKETING)
        ):
            if customer_id in consent:
                consent[customer_id][channel] = granted
    addresses = {
        customer_id: (stored[customer_id][0] if customer_id in stored else None) or fallback[customer_id]
        for customer_id in ids
    }
    digest_of = {a: address_digest(a) for a in set(addresses.values()) if a}
    in_force = select(AddressSuppression.address_digest, AddressSuppression.reason).where(
        AddressSuppression.lifted_at.is_(None)
    )
    suppressed: dict[str, str] = {}
    if among is not None:
        suppressed.update((digest, reason) for digest, reason in session.execute(in_force))
    else:
        for chunk in chunks(sorted(set(digest_of.values())), _CHUNK):
            matching = session.execute(in_force.where(AddressSuppression.address_digest.in_(chunk)))
            suppressed.update((digest, reason) for digest, reason in matching)
    found = {}
    for customer_id in ids:
        address = addresses[customer_id]
        suppression = suppressed.get(digest_of[address]) if address else None
        email, timezone, unsubscribed = stored.get(customer_id, (None, None, False))
        found[customer_id] = ContactRow(email, timezone, unsubscribed, suppression, consent[customer_id])
    return found


def recent_messages(
    session: Session, customer_ids: Iterable[str], since: datetime, among: Select[str] | None = None
) -> dict[str, list[SentMessage]]:
    """What reached each customer since ``since`` (actions ``sent`` or ``done``), one query per
    thousand, or one with ``among`` (the query of exactly those ids, as :func:`contacts`)."""
    ids = sorted(set(customer_ids))
    found: dict[str, list[SentMessage]] = {customer_id: [] for customer_id in ids}
    reached = (ActionStatus.SENT.value, ActionStatus.DONE.value)
    for condition in _selecting(Action.customer_id, ids, among):
        rows = session.execute(
            select(
                Action.customer_id, Action.rule_id, Action.kind, Action.status, Action.category, Action.done_at
            ).where(condition, Action.status.in_(reached), Action.done_at >= since)
        )
        for customer_id, rule_id, kind, status, category, done_at in rows:
            if done_at is not None and customer_id in found:
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
