"""REST API tokens: stored as SHA-256 hashes, shown once when created, revoked not deleted."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ecrm_interaction.storage import audit
from ecrm_interaction.storage.models import ApiToken

ROLES = ("viewer", "agent", "marketer", "admin")
"""Least to most: viewers read; agents also work cases (open, note, assign, resolve); marketers
also change rules, templates, segments, consent and the loyalty program; admins also manage
tokens and suppressions and read the audit log."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(session: Session, name: str, role: str, actor: str) -> str:
    """Create a token and return it (shown once; only its hash is kept); audited. A second
    token of the same ``name`` fails when the session flushes (the name is unique)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    token = f"ecrm_{role[:1]}_{secrets.token_urlsafe(24)}"
    session.add(ApiToken(id=str(uuid.uuid4()), name=name, role=role, token_hash=hash_token(token)))
    session.flush()
    audit.record(session, actor, "create", "api_token", name, {"role": role})
    return token


def revoke_token(session: Session, name: str, actor: str) -> bool:
    """Revoke the token in force called ``name``; False when there is none. Audited."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    revoked = bool(result.rowcount)  # type: ignore[attr-defined]
    if revoked:
        audit.record(session, actor, "revoke", "api_token", name, {})
    return revoked


def tokens(session: Session) -> list[ApiToken]:
    """Every token, revoked ones too, by name."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def token_by_hash(session: Session, digest: str) -> ApiToken | None:
    """The token in force whose hash is ``digest``."""
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)))
