"""The customer aggregate, set-based: profile rows and contact state (unsubscribe, consents,
address suppressions) and segment memberships, read and written for a batch of customers at once.

Every function takes the caller's session; the shell that owns the unit of work (the consumer's
batch) opens and commits the transaction.

Customers as the API reads them: the stored profile, segment memberships and consents.
(The intake writes them in bulk.)"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, null, or_, select, update
from sqlalchemy.orm import Session

from ecrm_interaction.storage.bulk import among, chunks, table_of, unnest_insert, upsert
from ecrm_interaction.storage.models import AddressSuppression, Consent, Customer, CustomerSegment, utcnow
from ecrm_interaction.storage.store import MARKETING, aware


@dataclass(slots=True)
class CustomerRow:
    """A customer's stored row, as far as the intake reads and writes it."""

    customer_id: str
    profile: str | None
    """The profile as JSON (``CustomerProfile``)."""
    profile_version: int
    email: str | None
    timezone: str | None
    unsubscribed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ConsentRow:
    customer_id: str
    channel: str
    purpose: str
    granted: bool
    source: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SegmentRow:
    customer_id: str
    segment_id: str
    segment_name: str
    since: datetime


@dataclass(frozen=True, slots=True)
class SuppressionRow:
    address_digest: str
    reason: str
    source: str
    suppressed_at: datetime
    lifted_at: datetime | None = None


def read_customers(
    session: Session, customer_ids: Iterable[str], profiles_of: Collection[str] | None = None
) -> dict[str, CustomerRow]:
    """The stored rows of these customers (absent ones are missing); with ``profiles_of``, only
    those customers' rows carry their profile (the others' ``profile`` is None)."""
    ids, found = sorted(set(customer_ids)), {}
    c = table_of(Customer).c
    for part in chunks(ids):
        if profiles_of is None:
            profile: Any = c.profile
        elif wanted := sorted(set(part) & set(profiles_of)):
            profile = case((among(session, c.customer_id, wanted), c.profile), else_=null())
        else:
            profile = null()
        query = select(c.customer_id, profile, c.profile_version, c.email, c.timezone, c.unsubscribed_at)
        for row in session.execute(query.where(among(session, c.customer_id, part))):
            found[row[0]] = CustomerRow(*row)
    return found


def write_profiles(session: Session, rows: Iterable[CustomerRow]) -> None:
    """Insert or update the customers' profiles (a stored newer version wins); a new row gets the
    row's ``unsubscribed_at``, an existing one keeps its own (see :func:`write_unsubscribed`)."""
    table = table_of(Customer)
    connection = session.connection()
    dialect = connection.dialect
    rows = list(rows)
    conflict = (
        "ON CONFLICT (customer_id) DO UPDATE SET profile = excluded.profile,"
        " profile_version = excluded.profile_version, email = excluded.email, timezone = excluded.timezone,"
        " updated_at = excluded.updated_at"
        f" WHERE {table.name}.profile_version <= excluded.profile_version"
    )
    if dialect.name == "postgresql":
        if rows:
            columns = (
                "customer_id",
                "profile",
                "profile_version",
                "email",
                "timezone",
                "unsubscribed_at",
                "updated_at",
            )
            at = utcnow()
            tuples = [(r.customer_id, r.profile, r.profile_version, r.email, r.timezone, r.unsubscribed_at, at)
                      for r in rows]  # fmt: skip
            unnest_insert(session, table, columns, tuples, conflict)
        return
    stamp = table.c.updated_at.type.bind_processor(dialect) or (lambda value: value)
    now = stamp(utcnow())
    values = [
        (r.customer_id, r.profile, r.profile_version, r.email, r.timezone,
         None if r.unsubscribed_at is None else stamp(r.unsubscribed_at), now)
        for r in rows
    ]  # fmt: skip
    if not values:
        return
    # The hottest statement of the intake, one row per customer of the batch: sent to the driver
    # as it is (an executemany; on PostgreSQL one unnest insert), without SQLAlchemy's per-row work.
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} (customer_id, profile, profile_version, email, timezone, unsubscribed_at,"
        f" updated_at) VALUES ({', '.join([mark] * 7)}) {conflict}"
    )
    connection.exec_driver_sql(sql, values)


def write_unsubscribed(session: Session, changes: Iterable[tuple[str, datetime | None]]) -> None:
    """Set (a time) or clear (None: opted in again) the customers' ``unsubscribed_at``."""
    values = [{"key": customer_id, "at": at} for customer_id, at in changes]
    if values:
        c = table_of(Customer).c

        statement = update(table_of(Customer)).where(c.customer_id == bindparam("key"))
        session.execute(statement.values(unsubscribed_at=bindparam("at")), values)


def read_segments(session: Session, customer_ids: Iterable[str]) -> dict[str, set[str]]:
    """The segment ids each customer is in (customers in none are missing)."""
    found: dict[str, set[str]] = {}
    c = table_of(CustomerSegment).c
    for part in chunks(sorted(set(customer_ids))):
        for customer_id, segment_id in session.execute(
            select(c.customer_id, c.segment_id).where(among(session, c.customer_id, part))
        ):
            found.setdefault(customer_id, set()).add(segment_id)
    return found


def write_segments(session: Session, entered: Iterable[SegmentRow], left: Iterable[tuple[str, str]]) -> None:
    """Memberships gained (kept as they are when already there) and lost (customer id, segment id)."""
    gone = list(left)
    if gone:
        c = table_of(CustomerSegment).c
        for part in chunks(gone, 1000):
            session.execute(
                delete(table_of(CustomerSegment)).where(
                    or_(*(and_(c.customer_id == cid, c.segment_id == sid) for cid, sid in part))
                )
            )
    values = [
        {"customer_id": r.customer_id, "segment_id": r.segment_id, "segment_name": r.segment_name, "since": r.since}
        for r in entered
    ]
    if values:
        session.execute(upsert(session, table_of(CustomerSegment)).on_conflict_do_nothing(), values)


def read_consents(session: Session, customer_ids: Iterable[str]) -> dict[str, list[ConsentRow]]:
    """Every consent of these customers (all purposes)."""
    found: dict[str, list[ConsentRow]] = {}
    c = table_of(Consent).c
    for part in chunks(sorted(set(customer_ids))):
        query = select(c.customer_id, c.channel, c.purpose, c.granted, c.source, c.updated_at)
        for row in session.execute(query.where(among(session, c.customer_id, part))):
            found.setdefault(row.customer_id, []).append(ConsentRow(*row))
    return found


def write_consents(session: Session, rows: Iterable[ConsentRow]) -> None:
    """Record consents; one stored with a later time stays as it is."""
    values = [
        {"customer_id": r.customer_id, "channel": r.channel, "purpose": r.purpose, "granted": r.granted,
         "source": r.source, "updated_at": r.updated_at}
        for r in rows
    ]  # fmt: skip
    if not values:
        return
    table = table_of(Consent)
    statement = upsert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.customer_id, table.c.channel, table.c.purpose],
        set_={
            "granted": statement.excluded.granted,
            "source": statement.excluded.source,
            "updated_at": statement.excluded.updated_at,
        },
        where=table.c.updated_at <= statement.excluded.updated_at,
    )
    session.execute(statement, values)


def read_suppressions(session: Session, digests: Iterable[str]) -> dict[str, SuppressionRow]:
    """The suppression rows (in force or lifted) of these address digests."""
    found = {}
    c = table_of(AddressSuppression).c
    for part in chunks(sorted(set(digests))):
        query = select(c.address_digest, c.reason, c.source, c.suppressed_at, c.lifted_at)
        for row in session.execute(query.where(among(session, c.address_digest, part))):
            found[row.address_digest] = SuppressionRow(*row)
    return found


def write_suppressions(session: Session, new: Iterable[SuppressionRow], renewed: Iterable[SuppressionRow]) -> None:
    """Suppress addresses: ``new`` ones (another replica's row for the same address wins), and
    ``renewed`` ones whose lifted suppression is in force again."""

    table = table_of(AddressSuppression)
    values = [
        {"address_digest": r.address_digest, "reason": r.reason, "source": r.source[:200],
         "suppressed_at": r.suppressed_at}
        for r in new
    ]  # fmt: skip
    if values:
        session.execute(upsert(session, table).on_conflict_do_nothing(), values)
    again = [{"key": r.address_digest, "r": r.reason, "s": r.source[:200], "at": r.suppressed_at} for r in renewed]
    if again:
        statement = (
            update(table)
            .where(table.c.address_digest == bindparam("key"))
            .values(reason=bindparam("r"), source=bindparam("s"), suppressed_at=bindparam("at"), lifted_at=None,
                    lifted_by=None)
        )  # fmt: skip
        session.execute(statement, again)


def customer(session: Session, customer_id: str) -> Customer | None:
    return session.get(Customer, customer_id)


def segments(session: Session, customer_id: str) -> list[CustomerSegment]:
    """The segments the customer is in."""
    return list(session.scalars(select(CustomerSegment).where(CustomerSegment.customer_id == customer_id)))


def consents(session: Session, customer_id: str) -> list[Consent]:
    """Every consent of the customer (each channel and purpose)."""
    return list(session.scalars(select(Consent).where(Consent.customer_id == customer_id)))


def _customer_row(session: Session, customer_id: str) -> Customer:
    row = session.get(Customer, customer_id)
    if row is None:
        row = Customer(customer_id=customer_id, profile_version=-1)
        session.add(row)
        session.flush()
    return row


def mark_unsubscribed(session: Session, customer_id: str, at: datetime) -> bool:
    """Unsubscribe the customer from marketing; whether it changed anything (it is idempotent)."""
    row = _customer_row(session, customer_id)
    if row.unsubscribed_at is not None:
        return False
    row.unsubscribed_at = at
    return True


def set_consent(
    session: Session, customer_id: str, channel: str, granted: bool, purpose: str, source: str, at: datetime
) -> None:
    """Record one consent (channel, purpose) unless a newer one is stored; opting in to email
    marketing again undoes an earlier unsubscribe."""
    row = session.get(Consent, (customer_id, channel, purpose))
    if row is None:
        session.add(
            Consent(customer_id=customer_id, channel=channel, granted=granted, purpose=purpose, source=source,
                    updated_at=at)
        )  # fmt: skip
    elif aware(row.updated_at) <= at:  # type: ignore[operator]
        row.granted, row.source, row.updated_at = granted, source, at
    if granted and channel == "email" and purpose == MARKETING:
        customer = session.get(Customer, customer_id)
        if customer is not None and customer.unsubscribed_at is not None and aware(customer.unsubscribed_at) < at:  # type: ignore[operator]
            customer.unsubscribed_at = None


def unsubscribe(session: Session, customer_id: str, source: str, now: datetime) -> bool:
    """Unsubscribe from marketing and withdraw email marketing consent; whether it changed anything."""
    changed = mark_unsubscribed(session, customer_id, now)
    set_consent(session, customer_id, "email", False, MARKETING, source, now)
    return changed
