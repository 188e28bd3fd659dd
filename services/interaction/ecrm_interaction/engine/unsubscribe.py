"""Signed one-click unsubscribe links (RFC 8058), checked by the interaction service's pages.

A link names the customer and the message it came in; it is signed with ``TRACKING_SECRET``
(itsdangerous), so nobody can unsubscribe someone else by guessing a URL.
"""

from __future__ import annotations

import re
from email.message import Message

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, Field, ValidationError

_SALT = "ecrm.unsubscribe.v1"
_MAILTO_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.IGNORECASE)


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


def token_of_mail(message: Message) -> str | None:
    """The token in the subject of a mail sent to List-Unsubscribe's ``mailto:``
    (``unsubscribe <token>``, as our header asks; a client may prefix ``Re:`` or the like)."""
    match = _MAILTO_SUBJECT.search(str(message.get("Subject", "")))
    return match[1] if match else None
