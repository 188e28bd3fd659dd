"""Address suppressions as the API and the CLI see them: look one up, list those in force, lift
one. (Suppressing an address is the delivery's: :meth:`Store.mark_suppressed`.)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.storage import audit
from ecrm_interaction.storage.models import AddressSuppression


def in_force(session: Session, digest: str) -> AddressSuppression | None:
    """The suppression in force for the address of ``digest``, if any."""
    row = session.get(AddressSuppression, digest)
    return row if row is not None and row.lifted_at is None else None


def of_address(session: Session, address: str | None) -> AddressSuppression | None:
    """The suppression in force for ``address``, if any."""
    return in_force(session, address_digest(address)) if address else None


def listed(session: Session, limit: int = 100) -> list[AddressSuppression]:
    """The suppressions in force, newest first."""
    query = select(AddressSuppression).where(AddressSuppression.lifted_at.is_(None))
    return list(session.scalars(query.order_by(AddressSuppression.suppressed_at.desc()).limit(limit)))


def lift(session: Session, digest: str, actor: str, reason: str, now: datetime) -> AddressSuppression | None:
    """Lift the suppression in force for the address of ``digest`` (None when there is none);
    audited with the reason."""
    row = in_force(session, digest)
    if row is None:
        return None
    row.lifted_at, row.lifted_by = now, actor
    audit.record(
        session,
        actor,
        "lift",
        "address_suppression",
        digest,
        {"reason": reason, "was": row.reason, "source": row.source},
    )
    return row
