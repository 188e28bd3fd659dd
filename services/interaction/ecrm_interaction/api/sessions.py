"""Console sign-in sessions: a signed, timed cookie naming the user and the session's CSRF token.

The cookie (``ecrm_session``, HttpOnly, SameSite=Lax, Secure behind https) is signed with
``INTERACTION_CONSOLE_SECRET`` (itsdangerous) and lasts ``INTERACTION_CONSOLE_SESSION_HOURS``.
A request that changes something and is authenticated by the cookie must also carry the
session's CSRF token, in the ``X-CSRF-Token`` header (htmx sends it) or the ``csrf_token`` form
field; a cross-site page can send the cookie but cannot read the token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.tokens import ROLES
from ecrm_schemas.rate_limit import TokenBuckets

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "ROLES", "SAFE_METHODS", "SESSION_COOKIE", "ConsoleSession", "SessionSigner"]

SESSION_COOKIE = "ecrm_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    user_id: str
    csrf: str
    issued_at: datetime


class SessionSigner:
    """Issues and reads session cookies; built once from the settings."""

    def __init__(self, settings: InteractionSettings) -> None:
        self._serializer = URLSafeTimedSerializer(
            settings.interaction_console_secret.get_secret_value(), salt="ecrm-console-session"
        )
        self.max_age_s = int(settings.interaction_console_session_hours * 3600)
        self.secure = settings.interaction_public_url.startswith("https://")

    def issue(self, user_id: str) -> tuple[str, ConsoleSession]:
        """A new session for the user: the cookie's value and what it says."""
        session = ConsoleSession(user_id, secrets.token_urlsafe(24), datetime.now(UTC))
        value = self._serializer.dumps({"u": session.user_id, "c": session.csrf, "t": session.issued_at.timestamp()})
        return value, session

    def read(self, value: str) -> ConsoleSession | None:
        """The session a cookie holds, or None when it is forged, altered or expired."""
        try:
            data = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not {"u", "c", "t"} <= data.keys():
            return None
        return ConsoleSession(str(data["u"]), str(data["c"]), datetime.fromtimestamp(float(data["t"]), UTC))


class SignInThrottle:
    """Sign-in attempts per email address, limited by a token bucket: a burst of ``burst``
    attempts, then one per ``every_s`` (guessing passwords gets slow). Per process."""

    def __init__(self, burst: int = 10, every_s: float = 30.0) -> None:
        self._buckets = TokenBuckets(1.0 / every_s, burst)

    def admit(self, email: str) -> int | None:
        """Take an attempt for ``email``: None if admitted, else the seconds to wait."""
        return self._buckets.admit(email.strip().lower())
