"""How our outgoing mail is tagged, so that an ESP's events about it can be attributed.

The interaction service attaches these name/value pairs to every message it hands to an
email service provider; the collector's ESP webhooks read them back from the provider's
events. Each provider carries them its own way:

- **SendGrid**: ``custom_args`` (``unique_args`` in the legacy API). They come back as
  top-level keys of each Event Webhook event, next to ``event``, ``email`` etc.; the
  ``ecrm_`` prefix keeps them from colliding with SendGrid's own keys. Values are strings.
- **Amazon SES**: message tags (``Tags`` of ``SendEmail``, or the ``X-SES-MESSAGE-TAGS``
  header). They come back in ``mail.tags`` as ``{name: [value]}`` (event publishing through
  a configuration set only; identity notifications carry no tags). SES allows only ASCII
  letters, digits, ``_`` and ``-`` in names and values, at most 256 characters: an id
  outside that alphabet cannot travel as an SES tag.
- **Mailgun**: user variables (``v:<name>`` API parameters, or the JSON
  ``X-Mailgun-Variables`` header). They come back as ``event-data["user-variables"]``.

:func:`provider_headers` writes the tags into each configured provider's SMTP header
(``X-SMTPAPI``, ``X-SES-MESSAGE-TAGS``, ``X-Mailgun-Variables``), so what we send and what the
webhooks read back have this one owner.

:data:`EMAIL_ID` is the same value as the ``X-ECRM-Send-Id`` header our SMTP sender sets and
the ``email_id`` of our tracking links, so ESP events and our own opens/clicks name the
same message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from typing import Literal

EMAIL_ID = "ecrm_email_id"
"""Our id of the sent message (the send id); becomes the event's ``properties.email_id``."""
USER_ID = "ecrm_user_id"
"""The recipient's ``userId``, when known; becomes the event's ``userId``."""
ANONYMOUS_ID = "ecrm_anonymous_id"
"""The recipient's ``anonymousId``, when that is all we know; becomes the event's ``anonymousId``."""
RULE_ID = "ecrm_rule_id"
"""The interaction rule that sent the message; becomes ``properties.rule_id``."""
CAMPAIGN_ID = "ecrm_campaign_id"
"""The campaign the message belongs to; becomes ``properties.campaign_id``."""

ALL_TAGS: tuple[str, ...] = (EMAIL_ID, USER_ID, ANONYMOUS_ID, RULE_ID, CAMPAIGN_ID)

Provider = Literal["sendgrid", "ses", "mailgun"]
PROVIDERS: tuple[Provider, ...] = ("sendgrid", "ses", "mailgun")

SENDGRID_HEADER = "X-SMTPAPI"
"""SendGrid's SMTP API header: JSON, our tags under ``unique_args``."""
SES_TAGS_HEADER = "X-SES-MESSAGE-TAGS"
"""Amazon SES message tags over SMTP: ``name=value, name=value``."""
SES_CONFIGURATION_SET_HEADER = "X-SES-CONFIGURATION-SET"
"""The SES configuration set whose event destinations publish the message's events (and tags)."""
MAILGUN_HEADER = "X-Mailgun-Variables"
"""Mailgun's user variables over SMTP: a JSON object."""
PROVIDER_HEADERS: tuple[str, ...] = (SENDGRID_HEADER, SES_TAGS_HEADER, SES_CONFIGURATION_SET_HEADER, MAILGUN_HEADER)
"""Every header :func:`provider_headers` may set (the providers remove them before delivery)."""
_SES_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def message_tags(
    email_id: str,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    rule_id: str | None = None,
    campaign_id: str | None = None,
) -> dict[str, str]:
    """The tags to attach to one outgoing message; absent values are left out."""
    values = {
        EMAIL_ID: email_id,
        USER_ID: user_id,
        ANONYMOUS_ID: anonymous_id,
        RULE_ID: rule_id,
        CAMPAIGN_ID: campaign_id,
    }
    return {name: value for name, value in values.items() if value}


def address_anonymous_id(address: str) -> str:
    """The ``anonymousId`` of someone known only by an email address.

    ``email:`` and the first 32 hex digits of the SHA-256 of the trimmed, lower-cased address,
    so every service derives the same id from the same address without storing the address in it.
    """
    return "email:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def provider_headers(
    tags: Mapping[str, str], providers: Collection[Provider], *, ses_configuration_set: str | None = None
) -> dict[str, str]:
    """The SMTP headers that carry ``tags`` through each of ``providers`` (ASCII, unfolded).

    What each header becomes in the provider's events is what the collector's ESP webhooks
    read (see the module docstring). A tag SES cannot carry (a value outside its alphabet,
    an e-mail address as user id, say) is left out of its header: the recipient address
    still attributes that provider's events.
    """
    headers: dict[str, str] = {}
    if "sendgrid" in providers and tags:
        headers[SENDGRID_HEADER] = json.dumps({"unique_args": dict(tags)}, ensure_ascii=True)
    if "ses" in providers:
        pairs = [f"{name}={value}" for name, value in tags.items() if _SES_VALUE.match(value)]
        if pairs:
            headers[SES_TAGS_HEADER] = ", ".join(pairs)
        if ses_configuration_set:
            headers[SES_CONFIGURATION_SET_HEADER] = ses_configuration_set
    if "mailgun" in providers and tags:
        headers[MAILGUN_HEADER] = json.dumps(dict(tags), ensure_ascii=True)
    return headers
