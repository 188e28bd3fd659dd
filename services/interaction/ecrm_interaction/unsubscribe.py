"""Signed one-click unsubscribe links (RFC 8058), checked by the interaction service's pages.

A link names the customer and the message it came in; it is signed with ``TRACKING_SECRET``
(itsdangerous), so nobody can unsubscribe someone else by guessing a URL.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, Field, ValidationError

_SALT = "ecrm.unsubscribe.v1"


class UnsubscribeToken(BaseModel):
    customer_id: str = Field(min_length=1)
    email_id: str | None = None


class InvalidUnsubscribeToken(ValueError):
    """Not made with our secret, or altered."""


def sign_unsubscribe(token: UnsubscribeToken, secret: str) -> str:
    return URLSafeSerializer(secret, salt=_SALT).dumps(token.model_dump(exclude_none=True))


def verify_unsubscribe(value: str, secret: str) -> UnsubscribeToken:
    try:
        return UnsubscribeToken.model_validate(URLSafeSerializer(secret, salt=_SALT).loads(value))
    except (BadSignature, ValidationError) as exc:
        raise InvalidUnsubscribeToken("the unsubscribe link is invalid or was altered") from exc
