"""Console users: people who sign in to the staff console with an email and a password.

Passwords are kept as argon2id hashes (``argon2-cffi``, its default parameters); a hash made with
older parameters is replaced at the next sign-in. Every change is audited.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.storage import audit
from ecrm_interaction.storage.models import ConsoleUser
from ecrm_interaction.storage.tokens import ROLES

MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
# Verified against when the email is unknown, so that an unknown address takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be a console password, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    return None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def add_user(session: Session, email: str, name: str, role: str, password: str, actor: str) -> ConsoleUser:
    """Create a user; a second user with the same email fails when the session flushes. Audited."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if (problem := password_problem(password)) is not None:
        raise ValueError(f"password {problem}")
    user = ConsoleUser(
        id=str(uuid.uuid4()),
        email=normalise_email(email),
        name=name or email,
        role=role,
        password_hash=_hasher.hash(password),
        sessions_valid_after=datetime.now(UTC),
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "create", "console_user", user.email, {"role": role})
    return user


def users(session: Session) -> list[ConsoleUser]:
    return list(session.scalars(select(ConsoleUser).order_by(ConsoleUser.email)))


def user_by_email(session: Session, email: str) -> ConsoleUser | None:
    return session.scalar(select(ConsoleUser).where(ConsoleUser.email == normalise_email(email)))


def user_by_id(session: Session, user_id: str) -> ConsoleUser | None:
    return session.get(ConsoleUser, user_id)


def authenticate(session: Session, email: str, password: str) -> ConsoleUser | None:
    """The enabled user with this email and password, else None (the same time either way)."""
    user = user_by_email(session, email)
    try:
        _hasher.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def end_sessions(session: Session, user: ConsoleUser) -> None:
    """Every session the user has signed in with ends now (sign-out ends them all)."""
    user.sessions_valid_after = datetime.now(UTC)


def set_password(session: Session, user: ConsoleUser, password: str, actor: str) -> None:
    if (problem := password_problem(password)) is not None:
        raise ValueError(f"password {problem}")
    user.password_hash = _hasher.hash(password)
    end_sessions(session, user)
    audit.record(session, actor, "set_password", "console_user", user.email, {})


def update_user(session: Session, user: ConsoleUser, actor: str, *, role: str | None, disabled: bool | None) -> None:
    """Change a user's role or disable/enable them; either ends their sessions. Audited."""
    detail: dict[str, object] = {}
    if role is not None and role != user.role:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        detail["role"] = {"before": user.role, "after": role}
        user.role = role
    if disabled is not None and disabled != (user.disabled_at is not None):
        detail["disabled"] = disabled
        user.disabled_at = datetime.now(UTC) if disabled else None
    if detail:
        end_sessions(session, user)
        audit.record(session, actor, "update", "console_user", user.email, detail)
