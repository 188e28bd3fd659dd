"""Signed email-tracking tokens: made by the interaction service, checked by the collector.

A token names the message, the customer and (for a click) the one URL it may redirect to.
The interaction service signs the links of the mail it sends; ``ecrm-collector links sign``
signs them for mail sent by another tool, with the same code (:func:`tracking_url`).
It is signed with ``TRACKING_SECRET`` (itsdangerous, HMAC-SHA256), so a tampered token is
refused and the click redirect cannot be turned into an open redirect.
"""

from __future__ import annotations

import time
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, Field, ValidationError

_SALT = "ecrm.email-tracking.v1"


class TrackingToken(BaseModel):
    """What a tracking link says about the email it sits in."""

    email_id: str = Field(min_length=1)
    customer: str = Field(min_length=1)
    customer_kind: Literal["userId", "anonymousId"] = "userId"
    rule_id: str | None = None
    campaign_id: str | None = None
    """The campaign: a broadcast's id, or the campaign of mail sent by another tool
    (``ecrm-collector links sign --campaign``)."""
    variant: str | None = None
    """The A/B variant of a broadcast's message."""
    url: str | None = None
    """The link's target, for click tokens."""
    issued_at: float = Field(default_factory=time.time)


class InvalidToken(ValueError):
    """The token was not made with our secret, or was altered."""


def sign(token: TrackingToken, secret: str) -> str:
    return URLSafeSerializer(secret, salt=_SALT).dumps(token.model_dump(exclude_none=True))


def verify(value: str, secret: str) -> TrackingToken:
    try:
        data = URLSafeSerializer(secret, salt=_SALT).loads(value)
        return TrackingToken.model_validate(data)
    except (BadSignature, ValidationError) as exc:
        raise InvalidToken("tracking token is invalid or was altered") from exc


def tracking_url(base_url: str, signed_token: str, *, click: bool) -> str:
    """The collector's URL for a signed token: the click redirect, or the open pixel."""
    base = base_url.rstrip("/")
    return f"{base}/v1/e/c/{signed_token}" if click else f"{base}/v1/e/o/{signed_token}.gif"
