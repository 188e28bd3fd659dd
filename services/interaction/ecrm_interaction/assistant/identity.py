"""The identity token a shop's back end gives its widget, as support widgets do (Intercom's
``user_hash``, Chatwoot's ``identifier_hash``): the hex HMAC-SHA256 of the user id under the
shop's secret. A visitor whose token checks out may ask about their own orders, refunds and
points; anyone else only reads articles."""

from __future__ import annotations

import hashlib
import hmac


def identity_token(secret: str, user_id: str) -> str:
    """What the shop's back end computes for ``user_id`` (documented in the README, any language can)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def verified(secret: str | None, user_id: str | None, token: str | None) -> bool:
    """Whether ``token`` vouches for ``user_id``; never without a secret, a user id and a token."""
    if not secret or not user_id or not token:
        return False
    return hmac.compare_digest(identity_token(secret, user_id), token.strip().lower())
