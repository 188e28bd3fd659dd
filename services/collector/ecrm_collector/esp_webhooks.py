"""ESP webhooks → the shared email events (pure: request bytes in, raw track events out).

Three email service providers report what happened to our mail; each entry point checks
the provider's signature, then turns its events into Segment-shaped ``track`` events named
as in :mod:`ecrm_schemas.catalog`:

=====================  ====================  ==========================  ===================
catalog event          SendGrid ``event``    SES ``eventType``           Mailgun ``event``
=====================  ====================  ==========================  ===================
Email Delivered        delivered             Delivery                    delivered
Email Opened           open                  Open                        opened
Email Link Clicked     click                 Click                       clicked
Email Bounced          bounce                Bounce                      failed
Email Marked as Spam   spamreport            Complaint                   complained
Unsubscribed           unsubscribe,          Subscription (opt-out)      unsubscribed
                       group_unsubscribe
=====================  ====================  ==========================  ===================

Everything else (SendGrid ``processed``/``deferred``/``dropped``/``group_resubscribe``, SES
``Send``/``Reject``/``DeliveryDelay``/``Rendering Failure``, Mailgun ``accepted``/``rejected``,
suppressed sends, unknown types) has no customer meaning here: it is counted in
:attr:`WebhookResult.ignored`, never silently lost.

The events leave this module unvalidated; the route stamps and validates them like any
other (``plan_ingest``). Rules common to every provider:

- ``messageId`` derives from the provider's own event id (``sendgrid:<sg_event_id>``,
  ``ses:<SNS MessageId>:<n>``, ``mailgun:<id>``): providers retry webhooks, and the pipeline
  deduplicates by ``messageId``.
- Identity comes from our tags (:mod:`ecrm_schemas.email_tags`): ``userId`` and/or
  ``anonymousId``; without them, ``anonymousId`` is derived from the recipient address
  (the interaction service aliases that id to the user it sent our message to, so the
  aggregator folds such events into that customer).
  A provider event with neither a recipient nor our tags cannot be attributed to anyone
  and is counted as ignored.
- Values are passed on, not judged: a click on a non-http URL becomes an event that
  validation rejects (and the dead-letter topic keeps) rather than one that vanishes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

import ecrm_schemas.email_tags as email_tags
from ecrm_collector.email_tracking import machine_fetch
from ecrm_schemas.builders import track_body
from ecrm_schemas.catalog import CatalogEvent

LIBRARY_NAME = "ecrm-esp-webhook"
SNS_CERT_URL_PATTERN = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
"""Where SNS signing certificates (and subscription confirmation URLs) may live."""
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
SENDGRID_MAX_AGE_S = 300.0
MAILGUN_MAX_AGE_S = 9 * 3600.0
"""Mailgun resends the original signature block when it retries, for about 8 hours."""
MAX_CLOCK_SKEW_S = 300.0
"""How far in the future a signed timestamp may be (the sender's clock running ahead)."""
SES_VALIDATION_MESSAGE = "Successfully validated SNS topic for Amazon SES event publishing."

SnsType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
_SNS_TYPES: tuple[SnsType, ...] = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


class WebhookError(Exception):
    """A webhook request to refuse, answered as ``{field, rule, message}`` with ``status``.

    401: not provably from the provider (signature missing, wrong, stale; untrusted
    certificate URL). 403: signed, but by an SNS topic that is not ours. 400: the payload
    is not the provider's shape.
    """

    def __init__(self, status: int, rule: str, message: str, field: str = "$") -> None:
        super().__init__(message)
        self.status, self.rule, self.message, self.field = status, rule, message, field

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


def _unauthorized(rule: str, message: str, field: str = "$") -> WebhookError:
    return WebhookError(401, rule, message, field)


def _malformed(rule: str, message: str, field: str = "$") -> WebhookError:
    return WebhookError(400, rule, message, field)


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What one webhook request produced: raw track events, and provider events ignored."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0
    replay_key: str | None = None
    """A value unique to this signed delivery (Mailgun's token). Mailgun's signature does not
    cover the events, so the route should remember the keys of requests it answered 2xx
    (for the signature's max age) and drop a request whose key it has seen."""


# --- the shared shape of an email event ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Activity:
    """One thing that happened to one recipient, before it becomes a track event."""

    name: str
    recipient: str | None
    timestamp: Any
    properties: dict[str, Any] = field(default_factory=dict)
    user_agent: str | None = None
    ip: str | None = None


class _Collector:
    """Accumulates one request's events and its count of ignored provider events."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.events: list[dict[str, Any]] = []
        self.ignored = 0

    def add(
        self, activity: _Activity, *, message_id: str, tags: Mapping[str, str], provider_message_id: str | None
    ) -> None:
        if not activity.recipient and not tags:
            self.ignored += 1  # nobody to attribute it to
            return
        self.events.append(_track_event(self.provider, activity, message_id, tags, provider_message_id))

    def result(self) -> WebhookResult:
        return WebhookResult(self.events, self.ignored)


def _track_event(
    provider: str, activity: _Activity, message_id: str, tags: Mapping[str, str], provider_message_id: str | None
) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    if email_id := tags.get(email_tags.EMAIL_ID) or provider_message_id:
        properties["email_id"] = email_id
    if rule_id := tags.get(email_tags.RULE_ID):
        properties["rule_id"] = rule_id
    if campaign_id := tags.get(email_tags.CAMPAIGN_ID):
        properties["campaign_id"] = campaign_id
    properties["provider"] = provider
    properties.update({name: value for name, value in activity.properties.items() if value is not None})

    context: dict[str, Any] = {}
    if activity.recipient:
        context["traits"] = {"email": activity.recipient}
    if activity.user_agent:
        context["userAgent"] = activity.user_agent
    if activity.ip:
        context["ip"] = activity.ip

    user_id, anonymous_id = tags.get(email_tags.USER_ID), tags.get(email_tags.ANONYMOUS_ID)
    if not user_id and not anonymous_id and activity.recipient:
        anonymous_id = email_tags.address_anonymous_id(activity.recipient)
    identity = {"userId": user_id, "anonymousId": anonymous_id}
    return track_body(activity.name, identity, properties, library=LIBRARY_NAME, message_id=message_id,
                      timestamp=activity.timestamp, context=context)  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_to_iso(value: Any) -> Any:
    """Epoch seconds as ISO-8601 UTC; anything else is returned as is, for validation to judge."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return value
    try:
        return _iso(datetime.fromtimestamp(float(value), UTC))
    except (ValueError, OverflowError, OSError):
        return value


def _text(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _object(container: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = container.get(key)
    return value if isinstance(value, Mapping) else {}


def _tag_values(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Our tags among a provider's name/value pairs (non-empty values, as strings)."""
    found = {}
    for name, value in pairs:
        if name in email_tags.ALL_TAGS and value is not None and value != "":
            found[name] = value if isinstance(value, str) else str(value)
    return found


def _content_id(value: Any) -> str:
    """A stable id for a provider event that lacks its own."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _json(body: bytes, field: str = "$") -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed("json_invalid", f"not valid JSON: {exc}", field) from None


def _check_fresh(value: Any, *, now: float, max_age_s: float, field: str) -> None:
    try:
        signed_at = float(value)
    except (TypeError, ValueError):
        signed_at = math.nan
    if not math.isfinite(signed_at):
        raise _unauthorized("timestamp", "the signed timestamp is not a number of seconds", field)
    if now - signed_at > max_age_s or signed_at - now > MAX_CLOCK_SKEW_S:
        raise _unauthorized("stale_timestamp", "the signed timestamp is too far from the current time", field)


# --- SendGrid Event Webhook -----------------------------------------------------------------

_SENDGRID_NAMES = {
    "delivered": CatalogEvent.EMAIL_DELIVERED,
    "open": CatalogEvent.EMAIL_OPENED,
    "click": CatalogEvent.EMAIL_LINK_CLICKED,
    "bounce": CatalogEvent.EMAIL_BOUNCED,
    "spamreport": CatalogEvent.EMAIL_MARKED_AS_SPAM,
    "unsubscribe": CatalogEvent.UNSUBSCRIBED,
    "group_unsubscribe": CatalogEvent.UNSUBSCRIBED,
}


def load_sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The Signed Event Webhook's verification key, as SendGrid shows it (base64 DER) or as PEM.

    Raises ``ValueError`` when it is not an elliptic-curve public key; call it at start-up.
    """
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a SendGrid verification key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not a SendGrid verification key: not an elliptic-curve public key")
    return key


def verify_sendgrid_signature(
    body: bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    public_key: str | ec.EllipticCurvePublicKey,
    now: float,
    max_age_s: float = SENDGRID_MAX_AGE_S,
) -> None:
    """Check SendGrid's ECDSA (P-256, SHA-256) signature of ``timestamp + body``.

    ``signature`` and ``timestamp`` are the ``X-Twilio-Email-Event-Webhook-Signature`` and
    ``-Timestamp`` headers; ``body`` the raw bytes as received. Raises :class:`WebhookError`
    (401) when a header is missing, the signature does not match, or the timestamp is more
    than ``max_age_s`` old (or :data:`MAX_CLOCK_SKEW_S` ahead of ``now``).
    """
    if not signature or not timestamp:
        message = f"the {SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} headers are required"
        raise _unauthorized("signature_missing", message, SENDGRID_SIGNATURE_HEADER)
    _check_fresh(timestamp, now=now, max_age_s=max_age_s, field=SENDGRID_TIMESTAMP_HEADER)
    key = load_sendgrid_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise _unauthorized("signature", "the SendGrid signature does not match", SENDGRID_SIGNATURE_HEADER) from None


def sendgrid_events(payload: Any) -> WebhookResult:
    """Normalise a decoded SendGrid Event Webhook body (a JSON array of events)."""
    if not isinstance(payload, list):
        raise _malformed("payload_shape", "a SendGrid webhook body is a JSON array of events")
    collector = _Collector("sendgrid")
    for index, event in enumerate(payload):
        if not isinstance(event, Mapping):
            raise _malformed("payload_shape", "each SendGrid event must be a JSON object", f"[{index}]")
        activity = _sendgrid_activity(event)
        if activity is None:
            collector.ignored += 1
            continue
        event_id = _text(event.get("sg_event_id")) or "sha256:" + _content_id(event)
        collector.add(
            activity,
            message_id=f"sendgrid:{event_id}",
            tags=_tag_values(event.items()),
            provider_message_id=_text(event.get("sg_message_id")),
        )
    return collector.result()


def _sendgrid_activity(event: Mapping[str, Any]) -> _Activity | None:
    kind = event.get("event")
    name = _SENDGRID_NAMES.get(kind) if isinstance(kind, str) else None
    if name is None:
        return None
    recipient, timestamp = _text(event.get("email")), _epoch_to_iso(event.get("timestamp"))
    if kind in ("open", "click"):
        # SendGrid's ``ip`` is the reader's only on engagement events (elsewhere it is the sending IP).
        user_agent, ip = _text(event.get("useragent")), _text(event.get("ip"))
        if kind == "open":
            machine = event.get("sg_machine_open") in (True, "true") or machine_fetch(user_agent, ip)
            properties: dict[str, Any] = {"machine_open": machine}
        else:
            properties = {"link_url": event.get("url")}
        return _Activity(name, recipient, timestamp, properties, user_agent, ip)
    if kind == "bounce":
        # ``type`` "bounce" is a permanent failure, "blocked" a temporary one.
        bounce_type = "soft" if event.get("type") == "blocked" else "hard"
        return _Activity(name, recipient, timestamp, {"bounce_type": bounce_type, "reason": _text(event.get("reason"))})
    if kind == "group_unsubscribe" and event.get("asm_group_id") is not None:
        return _Activity(name, recipient, timestamp, {"list_id": str(event["asm_group_id"])})
    return _Activity(name, recipient, timestamp)


def handle_sendgrid(
    body: bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    public_key: str | ec.EllipticCurvePublicKey,
    now: float,
    max_age_s: float = SENDGRID_MAX_AGE_S,
) -> WebhookResult:
    """``POST /v1/email/events/sendgrid``: verify (:func:`verify_sendgrid_signature`), then normalise."""
    verify_sendgrid_signature(
        body, signature=signature, timestamp=timestamp, public_key=public_key, now=now, max_age_s=max_age_s
    )
    return sendgrid_events(_json(body))


# --- Mailgun webhooks -----------------------------------------------------------------------

_MAILGUN_NAMES = {
    "delivered": CatalogEvent.EMAIL_DELIVERED,
    "opened": CatalogEvent.EMAIL_OPENED,
    "clicked": CatalogEvent.EMAIL_LINK_CLICKED,
    "failed": CatalogEvent.EMAIL_BOUNCED,
    "complained": CatalogEvent.EMAIL_MARKED_AS_SPAM,
    "unsubscribed": CatalogEvent.UNSUBSCRIBED,
}


def verify_mailgun_signature(
    signature_block: Any, *, signing_key: str, now: float, max_age_s: float = MAILGUN_MAX_AGE_S
) -> str:
    """Check a Mailgun ``signature`` object: hex HMAC-SHA256 of ``timestamp + token``.

    Returns the token (see :attr:`WebhookResult.replay_key`). Raises :class:`WebhookError`
    (401) when the block is missing, does not match ``signing_key`` (the HTTP webhook signing
    key, not the API key), or is more than ``max_age_s`` old. The signature covers only the
    timestamp and token, not ``event-data``; Mailgun resends it unchanged on retries, which
    is why the default age allows Mailgun's whole retry schedule.
    """
    block = signature_block if isinstance(signature_block, Mapping) else {}
    timestamp, token, signature = block.get("timestamp"), block.get("token"), block.get("signature")
    if not (isinstance(timestamp, str | int) and isinstance(token, str) and isinstance(signature, str)):
        message = "the signature object (timestamp, token, signature) is required"
        raise _unauthorized("signature_missing", message, "signature")
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise _unauthorized("signature", "the Mailgun signature does not match", "signature.signature")
    _check_fresh(timestamp, now=now, max_age_s=max_age_s, field="signature.timestamp")
    return token


def mailgun_events(event_data: Any) -> WebhookResult:
    """Normalise one Mailgun ``event-data`` object."""
    if not isinstance(event_data, Mapping):
        raise _malformed("payload_shape", "a Mailgun webhook carries an event-data object", "event-data")
    collector = _Collector("mailgun")
    activity = _mailgun_activity(event_data)
    if activity is None:
        collector.ignored += 1
        return collector.result()
    variables = event_data.get("user-variables")
    event_id = _text(event_data.get("id")) or "sha256:" + _content_id(event_data)
    collector.add(
        activity,
        message_id=f"mailgun:{event_id}",
        tags=_tag_values(variables.items()) if isinstance(variables, Mapping) else {},
        provider_message_id=_text(_object(_object(event_data, "message"), "headers").get("message-id")),
    )
    return collector.result()


def _mailgun_activity(data: Mapping[str, Any]) -> _Activity | None:
    kind = data.get("event")
    name = _MAILGUN_NAMES.get(kind) if isinstance(kind, str) else None
    if name is None:
        return None
    recipient, timestamp = _text(data.get("recipient")), _epoch_to_iso(data.get("timestamp"))
    if kind in ("opened", "clicked"):
        user_agent, ip = _text(_object(data, "client-info").get("user-agent")), _text(data.get("ip"))
        if kind == "opened":
            properties: dict[str, Any] = {"machine_open": machine_fetch(user_agent, ip)}
        else:
            properties = {"link_url": data.get("url")}
        return _Activity(name, recipient, timestamp, properties, user_agent, ip)
    if kind == "failed":
        reason = data.get("reason")
        if isinstance(reason, str) and reason.startswith("suppress-"):
            return None  # not sent: the address is on Mailgun's bounce/unsubscribe/complaint list
        bounce_type = "soft" if data.get("severity") == "temporary" else "hard"
        return _Activity(name, recipient, timestamp, {"bounce_type": bounce_type, "reason": _mailgun_reason(data)})
    return _Activity(name, recipient, timestamp)


def _mailgun_reason(data: Mapping[str, Any]) -> str | None:
    status = _object(data, "delivery-status")
    text = _text(status.get("description")) or _text(status.get("message"))
    code = status.get("code")
    parts = [str(code) if code not in (None, "") else None, text]
    return " ".join(part for part in parts if part) or _text(data.get("reason"))


def handle_mailgun(body: bytes, *, signing_key: str, now: float, max_age_s: float = MAILGUN_MAX_AGE_S) -> WebhookResult:
    """``POST /v1/email/events/mailgun``: body ``{"signature": {...}, "event-data": {...}}``.

    Verifies with :func:`verify_mailgun_signature`, then normalises; the result's
    ``replay_key`` is the signature's token.
    """
    payload = _json(body)
    if not isinstance(payload, Mapping):
        raise _malformed("payload_shape", "a Mailgun webhook body is a JSON object")
    token = verify_mailgun_signature(payload.get("signature"), signing_key=signing_key, now=now, max_age_s=max_age_s)
    return replace(mailgun_events(payload.get("event-data")), replay_key=token)


# --- Amazon SES, delivered by SNS -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnsEnvelope:
    """An SNS HTTP(S) delivery as posted, before its signature is checked."""

    type: SnsType
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str
    signing_cert_url: str
    subject: str | None = None
    subscribe_url: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class SnsOutcome:
    """A verified SNS delivery from an accepted topic."""

    type: SnsType
    result: WebhookResult
    subscribe_url: str | None = None
    """Only for a ``SubscriptionConfirmation``: the (AWS-hosted) URL the route must GET to confirm."""


def parse_sns_envelope(body: bytes) -> SnsEnvelope:
    """Decode an SNS POST body.

    Raises :class:`WebhookError`: 400 when it is not an SNS message, 401 when its signature
    fields are missing.
    """
    payload = _json(body)
    if not isinstance(payload, Mapping):
        raise _malformed("payload_shape", "an SNS message is a JSON object")
    kind = payload.get("Type")
    if kind not in _SNS_TYPES:
        raise _malformed("sns_type", f"Type must be one of {', '.join(_SNS_TYPES)}", "Type")
    required = ["MessageId", "TopicArn", "Message", "Timestamp"]
    if kind != "Notification":
        required += ["SubscribeURL", "Token"]
    for name in required:
        if not isinstance(payload.get(name), str):
            raise _malformed("payload_shape", f"{name} is required and must be a string", name)
    for name in ("SignatureVersion", "Signature", "SigningCertURL"):
        if not _text(payload.get(name)):
            raise _unauthorized("signature_missing", f"{name} is required", name)
    subject = payload.get("Subject")
    if subject is not None and not isinstance(subject, str):
        raise _malformed("payload_shape", "Subject must be a string", "Subject")
    return SnsEnvelope(
        type=kind,
        message_id=payload["MessageId"],
        topic_arn=payload["TopicArn"],
        message=payload["Message"],
        timestamp=payload["Timestamp"],
        signature_version=payload["SignatureVersion"],
        signature=payload["Signature"],
        signing_cert_url=payload["SigningCertURL"],
        subject=subject,
        subscribe_url=payload.get("SubscribeURL"),
        token=payload.get("Token"),
    )


def sns_string_to_sign(envelope: SnsEnvelope) -> bytes:
    """The canonical text SNS signs: ``Key\\nValue\\n`` for each signed key, in AWS's order.

    Notification: Message, MessageId, Subject (only when present), Timestamp, TopicArn, Type.
    Confirmations: Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type.
    """
    pairs: list[tuple[str, str | None]] = [("Message", envelope.message), ("MessageId", envelope.message_id)]
    if envelope.type == "Notification":
        if envelope.subject is not None:
            pairs.append(("Subject", envelope.subject))
    else:
        pairs.append(("SubscribeURL", envelope.subscribe_url))
    pairs.append(("Timestamp", envelope.timestamp))
    if envelope.type != "Notification":
        pairs.append(("Token", envelope.token))
    pairs += [("TopicArn", envelope.topic_arn), ("Type", envelope.type)]
    return "".join(f"{key}\n{value}\n" for key, value in pairs).encode()


def sns_cert_url(envelope: SnsEnvelope, pattern: str | re.Pattern[str] = SNS_CERT_URL_PATTERN) -> str:
    """The ``SigningCertURL`` to fetch the certificate from, once it matches ``pattern`` (an AWS SNS host).

    Raises :class:`WebhookError` (401) otherwise: a certificate from anywhere else proves nothing.
    """
    if re.match(pattern, envelope.signing_cert_url) is None:
        raise _unauthorized("cert_url", "SigningCertURL is not an Amazon SNS address", "SigningCertURL")
    return envelope.signing_cert_url


def verify_sns_signature(envelope: SnsEnvelope, certificate_pem: bytes) -> None:
    """Check the envelope's signature with the PEM certificate fetched from its ``SigningCertURL``.

    ``SignatureVersion`` 1 is SHA1withRSA, 2 is SHA256withRSA (PKCS#1 v1.5), over
    :func:`sns_string_to_sign`. Raises :class:`WebhookError` (401) when it does not match.
    """
    algorithm: hashes.HashAlgorithm
    if envelope.signature_version == "1":
        algorithm = hashes.SHA1()
    elif envelope.signature_version == "2":
        algorithm = hashes.SHA256()
    else:
        raise _unauthorized("signature_version", "SignatureVersion must be 1 or 2", "SignatureVersion")
    try:
        public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    except ValueError:
        raise _unauthorized("certificate", "the signing certificate is not a PEM X.509 certificate") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _unauthorized("certificate", "the signing certificate does not hold an RSA key")
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
        public_key.verify(signature, sns_string_to_sign(envelope), padding.PKCS1v15(), algorithm)
    except (InvalidSignature, binascii.Error, ValueError):
        raise _unauthorized("signature", "the SNS signature does not match", "Signature") from None


def handle_sns(
    envelope: SnsEnvelope,
    *,
    certificate_pem: bytes,
    allowed_topic_arns: Collection[str] | None,
    cert_url_pattern: str | re.Pattern[str] = SNS_CERT_URL_PATTERN,
) -> SnsOutcome:
    """``POST /v1/email/events/ses``, after the route fetched the certificate from :func:`sns_cert_url`.

    Checks the certificate URL again, the signature, then the topic: a valid signature only
    proves the message comes from *some* SNS topic, so ``allowed_topic_arns`` should name
    ours (``None`` accepts any topic; an empty collection refuses all). Raises
    :class:`WebhookError` (401, or 403 for another topic). A ``SubscriptionConfirmation``
    yields its ``SubscribeURL`` (400 unless it matches ``cert_url_pattern`` too); a
    ``Notification`` yields the SES events of its message.
    """
    sns_cert_url(envelope, cert_url_pattern)
    verify_sns_signature(envelope, certificate_pem)
    if allowed_topic_arns is not None and envelope.topic_arn not in allowed_topic_arns:
        raise WebhookError(403, "topic_arn", "this endpoint does not accept the SNS topic", "TopicArn")
    if envelope.type == "SubscriptionConfirmation":
        url = envelope.subscribe_url or ""
        if re.match(cert_url_pattern, url) is None:
            raise _malformed("subscribe_url", "SubscribeURL is not an Amazon SNS address", "SubscribeURL")
        return SnsOutcome(envelope.type, WebhookResult(), url)
    if envelope.type == "UnsubscribeConfirmation":
        return SnsOutcome(envelope.type, WebhookResult())
    return SnsOutcome(envelope.type, ses_events(envelope))


def ses_events(envelope: SnsEnvelope) -> WebhookResult:
    """Normalise the SES record in a (verified) Notification's ``Message``.

    SES's one-off "Successfully validated SNS topic" text is counted as ignored.
    """
    if envelope.message.strip() == SES_VALIDATION_MESSAGE:
        return WebhookResult(ignored=1)
    return ses_message_events(_json(envelope.message.encode(), "Message"), sns_message_id=envelope.message_id)


def ses_message_events(message: Any, *, sns_message_id: str) -> WebhookResult:
    """Normalise one decoded SES record: event publishing (``eventType``) or notification (``notificationType``).

    One event per recipient, ``messageId`` ``ses:<sns_message_id>:<n>``. Opens, clicks and
    subscription changes name no recipient, so they go to every ``mail.destination``.
    """
    if not isinstance(message, Mapping):
        raise _malformed("payload_shape", "the SES record in Message must be a JSON object", "Message")
    kind = message.get("eventType", message.get("notificationType"))
    mail = _object(message, "mail")
    collector = _Collector("ses")
    activities = _ses_activities(kind, message, mail)
    if not activities:
        collector.ignored += 1
        return collector.result()
    tags = _tag_values((name, _first(values)) for name, values in _object(mail, "tags").items())
    for index, activity in enumerate(activities):
        collector.add(
            activity,
            message_id=f"ses:{sns_message_id}:{index}",
            tags=tags,
            provider_message_id=_text(mail.get("messageId")),
        )
    return collector.result()


def _ses_activities(kind: Any, message: Mapping[str, Any], mail: Mapping[str, Any]) -> list[_Activity] | None:
    readers: list[str | None] = [*_strings(mail.get("destination"))] or [None]
    if kind == "Bounce":
        bounce = _object(message, "bounce")
        when = bounce.get("timestamp") or mail.get("timestamp")
        bounce_type = "hard" if bounce.get("bounceType") == "Permanent" else "soft"
        summary = " / ".join(t for t in (_text(bounce.get("bounceType")), _text(bounce.get("bounceSubType"))) if t)
        return [
            _Activity(
                CatalogEvent.EMAIL_BOUNCED,
                _text(recipient.get("emailAddress")),
                when,
                {"bounce_type": bounce_type, "reason": _text(recipient.get("diagnosticCode")) or summary or None},
            )
            for recipient in _objects(bounce.get("bouncedRecipients"))
        ]
    if kind == "Complaint":
        complaint = _object(message, "complaint")
        if complaint.get("complaintFeedbackType") == "not-spam" or (
            complaint.get("complaintSubType") == "OnAccountSuppressionList"
        ):
            return None  # not a new complaint
        when = complaint.get("timestamp") or mail.get("timestamp")
        recipients = _objects(complaint.get("complainedRecipients"))
        return [_Activity(CatalogEvent.EMAIL_MARKED_AS_SPAM, _text(r.get("emailAddress")), when) for r in recipients]
    if kind == "Delivery":
        delivery = _object(message, "delivery")
        when = delivery.get("timestamp") or mail.get("timestamp")
        return [
            _Activity(CatalogEvent.EMAIL_DELIVERED, address, when) for address in _strings(delivery.get("recipients"))
        ]
    if kind in ("Open", "Click"):
        engagement = _object(message, kind.lower())
        when = engagement.get("timestamp") or mail.get("timestamp")
        user_agent, ip = _text(engagement.get("userAgent")), _text(engagement.get("ipAddress"))
        properties: dict[str, Any]
        if kind == "Open":
            name, properties = CatalogEvent.EMAIL_OPENED, {"machine_open": machine_fetch(user_agent, ip)}
        else:
            name, properties = CatalogEvent.EMAIL_LINK_CLICKED, {"link_url": engagement.get("link")}
        return [_Activity(name, reader, when, properties, user_agent, ip) for reader in readers]
    if kind == "Subscription":
        subscription = _object(message, "subscription")
        when = subscription.get("timestamp") or mail.get("timestamp")
        return [
            _Activity(CatalogEvent.UNSUBSCRIBED, reader, when, opt_out)
            for opt_out in _ses_opt_outs(subscription)
            for reader in readers
        ]
    return None


def _ses_opt_outs(subscription: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The unsubscriptions in an SES ``Subscription`` record: from the whole list, or from new topics."""
    contact_list = _text(subscription.get("contactList"))
    new, old = _object(subscription, "newTopicPreferences"), _object(subscription, "oldTopicPreferences")
    if new.get("unsubscribeAll") is True:
        return [{"list_id": contact_list}]
    already_out = {
        status.get("topicName")
        for status in _objects(old.get("topicSubscriptionStatus"))
        if status.get("subscriptionStatus") == "OptOut"
    }
    return [
        {"list_id": contact_list, "topic": status["topicName"]}
        for status in _objects(new.get("topicSubscriptionStatus"))
        if status.get("subscriptionStatus") == "OptOut"
        and _text(status.get("topicName"))
        and status["topicName"] not in already_out
    ]


def _first(values: Any) -> Any:
    """SES tags are ``{name: [value]}``."""
    if isinstance(values, list):
        return values[0] if values else None
    return values


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str) and item] if isinstance(value, list) else []
