"""ESP webhooks: real-shaped provider payloads, signed for real, in; catalogue events out.

Payload shapes follow the providers' documentation examples: SendGrid's Event Webhook
reference, the "Examples of event data that Amazon SES publishes to Amazon SNS" page and
the SNS HTTP(S) message formats, and Mailgun's webhook payloads (as also captured in
django-anymail's tests).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from esp_signing import (
    SENDGRID_KEY,
    SENDGRID_VERIFICATION_KEY,
    SNS_KEY,
    certificate,
    mailgun_body,
    sendgrid_signature,
    sns_sign,
)

from ecrm_collector.esp_webhooks import (
    MAILGUN_MAX_AGE_S,
    SnsOutcome,
    WebhookError,
    WebhookResult,
    handle_mailgun,
    handle_sendgrid,
    handle_sns,
    load_sendgrid_public_key,
    parse_sns_envelope,
    sns_cert_url,
    sns_string_to_sign,
)
from ecrm_schemas.events import TrackEvent
from ecrm_schemas.validation import InvalidEvent, validate_event

NOW = 1_800_000_000.0
RECEIVED_AT = "2027-01-15T08:00:00.000Z"
OUR_TAGS = {
    "ecrm_email_id": "send-42",
    "ecrm_user_id": "user-7",
    "ecrm_rule_id": "rule-welcome",
    "ecrm_campaign_id": "camp-3",
}
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/69.0"
IMAGE_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def _valid(event: dict[str, Any]) -> TrackEvent:
    """What the collector's ingest step does after the webhook layer: stamp receipt, validate."""
    validated = validate_event({**event, "receivedAt": RECEIVED_AT})
    assert isinstance(validated, TrackEvent)
    return validated


def _address_id(address: str) -> str:
    return "email:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def _by_id(result: WebhookResult) -> dict[str, dict[str, Any]]:
    events = {event["messageId"]: event for event in result.events}
    assert len(events) == len(result.events), "messageIds must be unique within a request"
    return events


def _refused(call: Any, status: int, rule: str) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        call()
    assert (caught.value.status, caught.value.rule) == (status, rule), caught.value.as_dict()
    return caught.value


# --- SendGrid --------------------------------------------------------------------------------

SG_MESSAGE_ID = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
SG_COMMON = {"email": "example@test.com", "timestamp": 1513299569, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
             "category": "cat facts", "sg_message_id": SG_MESSAGE_ID}  # fmt: skip
SENDGRID_BATCH: list[dict[str, Any]] = [
    {**SG_COMMON, "event": "processed", "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==", **OUR_TAGS},
    {**SG_COMMON, "event": "deferred", "sg_event_id": "qK1MxfAaE_ukyyNsjxTpkw==", "response": "400 try again later",
     "attempt": "5"},
    {**SG_COMMON, "event": "delivered", "sg_event_id": "hqFbp3HH9WxIM0R2-x2M1Q==", "response": "250 OK",
     "ip": "168.1.1.1", **OUR_TAGS},
    {**SG_COMMON, "event": "open", "sg_event_id": "a9Qc4PeVRFy-vGmFNUdQ7A==", "useragent": BROWSER,
     "ip": "255.255.255.255", "sg_machine_open": False, **OUR_TAGS},
    {**SG_COMMON, "event": "open", "sg_event_id": "b2Xh3d7TS3ej0nAeF7oGCw==", "useragent": "Mozilla/5.0",
     "ip": "17.58.0.1", "sg_machine_open": True, **OUR_TAGS},
    {**SG_COMMON, "event": "click", "sg_event_id": "kCAi1KttyQdEKHhdC-nuEA==", "useragent": BROWSER,
     "ip": "255.255.255.255", "url": "https://shop.example.com/p/1", "url_offset": {"index": 0, "type": "html"},
     **OUR_TAGS},
    {**SG_COMMON, "event": "bounce", "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==", "reason": "500 unknown recipient",
     "status": "5.0.0", "type": "bounce", "bounce_classification": "Invalid Address"},
    {**SG_COMMON, "event": "bounce", "sg_event_id": "AZBw5aSwSZGLx9uDn1_E6A==",
     "reason": "550 5.7.1 Service unavailable; client host blocked", "status": "5.7.1", "type": "blocked",
     "bounce_classification": "Reputation"},
    {**SG_COMMON, "event": "dropped", "sg_event_id": "zmzJhfJgAfUSOW80yEbPyw==", "reason": "Bounced Address",
     "status": "5.0.0"},
    {**SG_COMMON, "event": "spamreport", "sg_event_id": "37nvH5QBz858KGVYCM4uOA=="},
    {**SG_COMMON, "event": "unsubscribe", "sg_event_id": "zz_BjPgU_5pS-J8vlfB1sg=="},
    {**SG_COMMON, "event": "group_unsubscribe", "sg_event_id": "ahSCB7xYcXFb-hEaawsPRw==", "useragent": BROWSER,
     "ip": "255.255.255.255", "url": "http://www.sendgrid.com/", "asm_group_id": 10},
    {**SG_COMMON, "event": "group_resubscribe", "sg_event_id": "H_0gAKgpMkXWqWaYqvAKRQ==", "asm_group_id": 10},
]  # fmt: skip


def _sendgrid_headers(body: bytes, *, timestamp: float = NOW, key: Any = SENDGRID_KEY) -> dict[str, str]:
    signature, signed_at = sendgrid_signature(body, timestamp, key)
    return {"signature": signature, "timestamp": signed_at}


def _sendgrid(body: bytes, **headers: Any) -> WebhookResult:
    signed = _sendgrid_headers(body) | headers
    return handle_sendgrid(body, public_key=SENDGRID_VERIFICATION_KEY, now=NOW, **signed)


def _sendgrid_body(events: list[dict[str, Any]] = SENDGRID_BATCH) -> bytes:
    return json.dumps(events).encode()


def test_sendgrid_signed_batch_becomes_valid_catalogue_events() -> None:
    result = _sendgrid(_sendgrid_body())

    assert [event["event"] for event in result.events] == [
        "Email Delivered",
        "Email Opened",
        "Email Opened",
        "Email Link Clicked",
        "Email Bounced",
        "Email Bounced",
        "Email Marked as Spam",
        "Unsubscribed",
        "Unsubscribed",
    ]
    assert result.ignored == 4  # processed, deferred, dropped, group_resubscribe
    for event in result.events:
        assert _valid(event).context.library == {"name": "ecrm-esp-webhook"}


def test_sendgrid_events_carry_identity_properties_and_context() -> None:
    events = _by_id(_sendgrid(_sendgrid_body()))

    delivered = events["sendgrid:hqFbp3HH9WxIM0R2-x2M1Q=="]
    assert delivered["userId"] == "user-7" and "anonymousId" not in delivered
    assert delivered["timestamp"] == "2017-12-15T00:59:29.000Z"
    assert delivered["properties"] == {"email_id": "send-42", "rule_id": "rule-welcome", "campaign_id": "camp-3",
                                       "provider": "sendgrid"}  # fmt: skip
    assert delivered["context"]["traits"] == {"email": "example@test.com"}
    assert "ip" not in delivered["context"]  # on a delivery, SendGrid's ip is its own sending IP

    human_open = events["sendgrid:a9Qc4PeVRFy-vGmFNUdQ7A=="]
    assert human_open["properties"]["machine_open"] is False
    assert human_open["context"]["userAgent"] == BROWSER and human_open["context"]["ip"] == "255.255.255.255"
    assert events["sendgrid:b2Xh3d7TS3ej0nAeF7oGCw=="]["properties"]["machine_open"] is True

    clicked = _valid(events["sendgrid:kCAi1KttyQdEKHhdC-nuEA=="])
    assert str(clicked.properties["link_url"]) == "https://shop.example.com/p/1"

    hard = events["sendgrid:6g4ZI7SA-xmRDv57GoPIPw=="]
    assert hard["properties"]["bounce_type"] == "hard" and hard["properties"]["reason"] == "500 unknown recipient"
    # Untagged: attributed to the address, and the message named by SendGrid's id.
    assert hard["anonymousId"] == _address_id("example@test.com") and "userId" not in hard
    assert hard["properties"]["email_id"] == SG_MESSAGE_ID
    assert events["sendgrid:AZBw5aSwSZGLx9uDn1_E6A=="]["properties"]["bounce_type"] == "soft"

    assert events["sendgrid:37nvH5QBz858KGVYCM4uOA=="]["event"] == "Email Marked as Spam"
    assert "list_id" not in events["sendgrid:zz_BjPgU_5pS-J8vlfB1sg=="]["properties"]
    assert events["sendgrid:ahSCB7xYcXFb-hEaawsPRw=="]["properties"]["list_id"] == "10"


def test_sendgrid_address_identity_ignores_case_and_spaces() -> None:
    shouting = {**SENDGRID_BATCH[2], "email": "  Example@TEST.com ", "sg_event_id": "x"}
    del shouting["ecrm_user_id"]
    [event] = _sendgrid(_sendgrid_body([shouting])).events
    assert event["anonymousId"] == _address_id("example@test.com")


def test_sendgrid_retried_batch_yields_the_same_message_ids() -> None:
    without_id = {key: value for key, value in SENDGRID_BATCH[2].items() if key != "sg_event_id"}
    body = _sendgrid_body([*SENDGRID_BATCH, without_id])
    first, again = _sendgrid(body), _sendgrid(body)
    assert [e["messageId"] for e in first.events] == [e["messageId"] for e in again.events]
    assert len(_by_id(first)) == 10
    assert first.events[-1]["messageId"].startswith("sendgrid:sha256:")


def test_sendgrid_click_on_a_non_http_url_is_kept_for_validation_to_reject() -> None:
    click = {**SENDGRID_BATCH[5], "url": "javascript:alert(1)"}
    [event] = _sendgrid(_sendgrid_body([click])).events
    with pytest.raises(InvalidEvent) as invalid:
        _valid(event)
    assert [error.field for error in invalid.value.errors] == ["properties.link_url"]


def test_sendgrid_event_with_no_recipient_and_no_tags_is_ignored() -> None:
    anonymous = {key: value for key, value in SENDGRID_BATCH[9].items() if key != "email"}
    tagged = {**anonymous, "sg_event_id": "tagged", "ecrm_anonymous_id": "anon-1"}
    result = _sendgrid(_sendgrid_body([anonymous, tagged]))
    assert result.ignored == 1
    [event] = result.events
    assert event["anonymousId"] == "anon-1" and "traits" not in event["context"]


def test_sendgrid_tampered_body_is_refused() -> None:
    body = _sendgrid_body()
    headers = _sendgrid_headers(body)
    tampered = body.replace(b"500 unknown recipient", b"250 all good, honest")
    _refused(lambda: _sendgrid(tampered, **headers), 401, "signature")


def test_sendgrid_signature_by_another_key_is_refused() -> None:
    body = _sendgrid_body()
    forged = _sendgrid_headers(body, key=ec.generate_private_key(ec.SECP256R1()))
    _refused(lambda: _sendgrid(body, **forged), 401, "signature")


@pytest.mark.parametrize("offset", [-301, 301 + 1])
def test_sendgrid_stale_or_future_timestamp_is_refused(offset: int) -> None:
    body = _sendgrid_body()
    _refused(lambda: _sendgrid(body, **_sendgrid_headers(body, timestamp=NOW + offset)), 401, "stale_timestamp")


def test_sendgrid_timestamp_within_tolerance_is_accepted() -> None:
    body = _sendgrid_body()
    assert _sendgrid(body, **_sendgrid_headers(body, timestamp=NOW - 299)).events


@pytest.mark.parametrize("missing", ["signature", "timestamp"])
def test_sendgrid_without_signature_headers_is_refused(missing: str) -> None:
    body = _sendgrid_body()
    _refused(lambda: _sendgrid(body, **{missing: None}), 401, "signature_missing")


@pytest.mark.parametrize(("body", "rule"), [(b"[{not json", "json_invalid"), (b'{"event": "open"}', "payload_shape"),
                                            (b'["open"]', "payload_shape")])  # fmt: skip
def test_sendgrid_signed_but_malformed_body_is_a_bad_request(body: bytes, rule: str) -> None:
    _refused(lambda: _sendgrid(body), 400, rule)


def test_sendgrid_verification_key_loads_from_base64_der_or_pem() -> None:
    pem = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = _sendgrid_body()
    headers = _sendgrid_headers(body)
    from_pem = handle_sendgrid(body, signature=headers["signature"], timestamp=headers["timestamp"],
                               public_key=load_sendgrid_public_key(pem.decode()), now=NOW)  # fmt: skip
    assert len(from_pem.events) == 9
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_der = rsa_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for not_a_key in ("not base64 at all!", base64.b64encode(b"junk").decode(), base64.b64encode(rsa_der).decode()):
        with pytest.raises(ValueError):
            load_sendgrid_public_key(not_a_key)


# --- Amazon SES through SNS ------------------------------------------------------------------

TOPIC = "arn:aws:sns:us-east-1:123456789012:ecrm-ses-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"


SNS_CERT = certificate(SNS_KEY)

SES_MAIL: dict[str, Any] = {
    "timestamp": "2017-08-05T00:40:02.012Z",
    "source": "Sender Name <sender@example.com>",
    "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
    "sendingAccountId": "123456789012",
    "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
    "destination": ["recipient@example.com"],
    "headersTruncated": False,
    "headers": [{"name": "From", "value": "Sender Name <sender@example.com>"},
                {"name": "To", "value": "recipient@example.com"},
                {"name": "Subject", "value": "Message sent from Amazon SES"}],
    "commonHeaders": {"from": ["Sender Name <sender@example.com>"], "to": ["recipient@example.com"],
                      "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
                      "subject": "Message sent from Amazon SES"},
    "tags": {"ses:configuration-set": ["ConfigSet"], "ses:source-ip": ["192.0.2.0"],
             "ses:from-domain": ["example.com"], "ses:caller-identity": ["ses_user"]},
}  # fmt: skip
SES_TAGGED_MAIL: dict[str, Any] = {
    **SES_MAIL,
    "tags": {**SES_MAIL["tags"], **{name: [value] for name, value in OUR_TAGS.items()}},
}
SES_BOUNCE: dict[str, Any] = {
    "eventType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {"emailAddress": "recipient@example.com", "action": "failed", "status": "5.1.1",
             "diagnosticCode": "smtp; 550 5.1.1 user unknown"},
            {"emailAddress": "other@example.com", "action": "failed", "status": "5.1.1",
             "diagnosticCode": "smtp; 550 5.1.1 mailbox unavailable"},
        ],
        "timestamp": "2017-08-05T00:41:02.669Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "reportingMTA": "dsn; mta.example.com",
    },
    "mail": SES_MAIL,
}  # fmt: skip
SES_COMPLAINT: dict[str, Any] = {
    "eventType": "Complaint",
    "complaint": {"complainedRecipients": [{"emailAddress": "recipient@example.com"}],
                  "timestamp": "2017-08-05T00:41:02.669Z",
                  "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
                  "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/60.0.3112.90 Safari/537.36",
                  "complaintFeedbackType": "abuse", "arrivalDate": "2017-08-05T00:41:02.669Z"},
    "mail": SES_TAGGED_MAIL,
}  # fmt: skip
SES_DELIVERY = {
    "eventType": "Delivery",
    "mail": SES_TAGGED_MAIL,
    "delivery": {"timestamp": "2016-10-19T23:21:04.133Z", "processingTimeMillis": 11893,
                 "recipients": ["recipient@example.com"], "smtpResponse": "250 2.6.0 Message received",
                 "reportingMTA": "mta.example.com"},
}  # fmt: skip
SES_OPEN: dict[str, Any] = {
    "eventType": "Open",
    "mail": SES_TAGGED_MAIL,
    "open": {"ipAddress": "192.0.2.1", "timestamp": "2017-08-09T22:00:19.652Z",
             "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) AppleWebKit/603.3.8 Mobile/14G60"},
}  # fmt: skip
SES_CLICK: dict[str, Any] = {
    "eventType": "Click",
    "mail": SES_TAGGED_MAIL,
    "click": {"ipAddress": "192.0.2.1", "link": "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
              "linkTags": {"samplekey0": ["samplevalue0"]}, "timestamp": "2017-08-09T23:51:25.570Z",
              "userAgent": "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 Chrome/60.0.3112.90 Safari/537.36"},
}  # fmt: skip
SES_SUBSCRIPTION: dict[str, Any] = {
    "eventType": "Subscription",
    "mail": SES_TAGGED_MAIL,
    "subscription": {
        "contactList": "ContactListName",
        "timestamp": "2022-01-12T01:00:17.910Z",
        "source": "UnsubscribeHeader",
        "newTopicPreferences": {"unsubscribeAll": True, "topicSubscriptionStatus": [
            {"topicName": "ExampleTopicName", "subscriptionStatus": "OptOut"}]},
        "oldTopicPreferences": {"unsubscribeAll": False, "topicSubscriptionStatus": [
            {"topicName": "ExampleTopicName", "subscriptionStatus": "OptOut"}]},
    },
}  # fmt: skip
SES_SEND = {"eventType": "Send", "mail": SES_MAIL, "send": {}}


def _notification(message: Any, *, message_id: str = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", version: str = "2",
                  key: rsa.RSAPrivateKey = SNS_KEY, **fields: Any) -> dict[str, Any]:  # fmt: skip
    envelope = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2017-08-05T00:41:03.001Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={TOPIC}:c9135db0",
        **fields,
    }
    return sns_sign(envelope, key)


def _confirmation(kind: str = "SubscriptionConfirmation", **fields: Any) -> dict[str, Any]:
    token = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09"
    envelope = {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": token,
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}",
        "Timestamp": "2012-04-26T20:45:04.751Z",
        "SignatureVersion": "1",
        "SigningCertURL": CERT_URL,
        **fields,
    }
    return sns_sign(envelope)


def _sns(envelope: dict[str, Any], *, allowed: tuple[str, ...] | None = (TOPIC,), cert: bytes = SNS_CERT) -> SnsOutcome:
    """What the route does: parse, check the certificate URL (then fetch it), verify and normalise."""
    parsed = parse_sns_envelope(json.dumps(envelope).encode())
    sns_cert_url(parsed)
    return handle_sns(parsed, certificate_pem=cert, allowed_topic_arns=allowed)


def test_sns_string_to_sign_follows_the_aws_key_order() -> None:
    with_subject = parse_sns_envelope(json.dumps(_notification("Hello world!", Subject="My First Message")).encode())
    assert sns_string_to_sign(with_subject) == (
        b"Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nMy First Message\n"
        b"Timestamp\n2017-08-05T00:41:03.001Z\nTopicArn\n" + TOPIC.encode() + b"\nType\nNotification\n"
    )
    without_subject = parse_sns_envelope(json.dumps(_notification("Hello world!")).encode())
    assert b"Subject" not in sns_string_to_sign(without_subject)
    raw = _confirmation()
    expected = "".join(f"{key}\n{raw[key]}\n" for key in ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                                          "Token", "TopicArn", "Type"))  # fmt: skip
    assert sns_string_to_sign(parse_sns_envelope(json.dumps(raw).encode())) == expected.encode()


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_signed_with_either_signature_version_becomes_hard_bounces(version: str) -> None:
    outcome = _sns(_notification(SES_BOUNCE, version=version))

    assert outcome.type == "Notification" and outcome.subscribe_url is None
    events = _by_id(outcome.result)
    first = events["ses:22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324:0"]
    second = events["ses:22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324:1"]
    assert first["event"] == second["event"] == "Email Bounced"
    assert first["properties"] == {"email_id": SES_MAIL["messageId"], "provider": "ses", "bounce_type": "hard",
                                   "reason": "smtp; 550 5.1.1 user unknown"}  # fmt: skip
    assert first["anonymousId"] == _address_id("recipient@example.com")
    assert second["anonymousId"] == _address_id("other@example.com")
    assert first["timestamp"] == "2017-08-05T00:41:02.669Z"
    for event in (first, second):
        _valid(event)


def test_sns_tampered_message_is_refused() -> None:
    envelope = _notification(SES_BOUNCE)
    envelope["Message"] = envelope["Message"].replace("Permanent", "Transient")
    _refused(lambda: _sns(envelope), 401, "signature")


def test_sns_signed_with_another_key_is_refused() -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _refused(lambda: _sns(_notification(SES_BOUNCE, key=other_key)), 401, "signature")
    # and the other key's own certificate is useless from anywhere but SNS, see the URL test
    assert _sns(_notification(SES_BOUNCE, key=other_key), cert=certificate(other_key)).result.events


def test_sns_unknown_signature_version_is_refused() -> None:
    envelope = _notification(SES_BOUNCE)
    envelope["SignatureVersion"] = "3"
    _refused(lambda: _sns(envelope), 401, "signature_version")


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-x.pem",
        "https://evil.example/https://sns.us-east-1.amazonaws.com/x.pem",
        "https://s3.amazonaws.com/SimpleNotificationService-x.pem",
    ],
)
def test_sns_certificate_from_an_unknown_host_is_refused(url: str) -> None:
    envelope = _notification(SES_BOUNCE, SigningCertURL=url)
    parsed = parse_sns_envelope(json.dumps(envelope).encode())
    _refused(lambda: sns_cert_url(parsed), 401, "cert_url")
    # handle_sns checks again, whatever certificate the route hands it
    _refused(lambda: handle_sns(parsed, certificate_pem=SNS_CERT, allowed_topic_arns=None), 401, "cert_url")


def test_sns_certificate_urls_of_aws_regions_are_trusted() -> None:
    for url in (CERT_URL, "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem"):
        envelope = parse_sns_envelope(json.dumps(_notification(SES_BOUNCE, SigningCertURL=url)).encode())
        assert sns_cert_url(envelope) == url


def test_sns_topic_outside_the_allow_list_is_forbidden() -> None:
    envelope = _notification(SES_BOUNCE)
    _refused(lambda: _sns(envelope, allowed=("arn:aws:sns:us-east-1:123456789012:other",)), 403, "topic_arn")
    _refused(lambda: _sns(envelope, allowed=()), 403, "topic_arn")
    assert _sns(envelope, allowed=None).result.events


def test_sns_subscription_confirmation_yields_the_url_to_confirm() -> None:
    outcome = _sns(_confirmation())
    assert outcome.type == "SubscriptionConfirmation"
    assert outcome.subscribe_url == _confirmation()["SubscribeURL"]
    assert outcome.result == WebhookResult()

    goodbye = _sns(_confirmation("UnsubscribeConfirmation"))
    assert goodbye.type == "UnsubscribeConfirmation" and goodbye.subscribe_url is None

    elsewhere = _confirmation(SubscribeURL="https://evil.example/?Action=ConfirmSubscription")
    _refused(lambda: _sns(elsewhere), 400, "subscribe_url")
    _refused(lambda: _sns(_confirmation(), allowed=("arn:aws:sns:us-east-1:1:theirs",)), 403, "topic_arn")


def test_ses_events_map_to_the_catalogue() -> None:
    def only(record: dict[str, Any]) -> dict[str, Any]:
        result = _sns(_notification(record)).result
        assert result.ignored == 0
        [event] = result.events
        _valid(event)
        return event

    soft = copy.deepcopy(SES_BOUNCE)
    soft["bounce"].update(bounceType="Transient", bounceSubType="MailboxFull")
    soft["bounce"]["bouncedRecipients"] = soft["bounce"]["bouncedRecipients"][:1]
    assert only(soft)["properties"]["bounce_type"] == "soft"

    complaint = only(SES_COMPLAINT)
    assert complaint["event"] == "Email Marked as Spam"
    assert complaint["userId"] == "user-7" and "anonymousId" not in complaint
    assert complaint["properties"] == {"email_id": "send-42", "rule_id": "rule-welcome", "campaign_id": "camp-3",
                                       "provider": "ses"}  # fmt: skip

    delivered = only(SES_DELIVERY)
    assert delivered["event"] == "Email Delivered" and delivered["timestamp"] == "2016-10-19T23:21:04.133Z"

    opened = only(SES_OPEN)
    assert opened["event"] == "Email Opened" and opened["properties"]["machine_open"] is False
    assert opened["context"]["ip"] == "192.0.2.1" and opened["context"]["userAgent"].startswith("Mozilla/5.0 (iPhone")
    proxied = copy.deepcopy(SES_OPEN)
    proxied["open"]["userAgent"] = IMAGE_PROXY  # Gmail fetches through its proxy when the person opens
    assert only(proxied)["properties"]["machine_open"] is False
    prefetched = copy.deepcopy(SES_OPEN)
    prefetched["open"].update(userAgent="Mozilla/5.0", ipAddress="17.58.0.1")  # Apple Mail Privacy Protection
    assert only(prefetched)["properties"]["machine_open"] is True

    clicked = only(SES_CLICK)
    assert clicked["event"] == "Email Link Clicked"
    assert clicked["properties"]["link_url"] == SES_CLICK["click"]["link"]

    unsubscribed = only(SES_SUBSCRIPTION)
    assert unsubscribed["event"] == "Unsubscribed" and unsubscribed["properties"]["list_id"] == "ContactListName"
    assert unsubscribed["context"]["traits"] == {"email": "recipient@example.com"}


def test_ses_topic_opt_out_is_an_unsubscribe_from_that_topic_only() -> None:
    record = copy.deepcopy(SES_SUBSCRIPTION)
    preferences = record["subscription"]
    preferences["newTopicPreferences"] = {"unsubscribeAll": False, "topicSubscriptionStatus": [
        {"topicName": "Weekly", "subscriptionStatus": "OptOut"}, {"topicName": "Offers", "subscriptionStatus": "OptIn"},
        {"topicName": "ExampleTopicName", "subscriptionStatus": "OptOut"}]}  # fmt: skip
    [event] = _sns(_notification(record)).result.events
    assert event["properties"]["topic"] == "Weekly" and event["properties"]["list_id"] == "ContactListName"

    preferences["newTopicPreferences"] = {"unsubscribeAll": False, "topicSubscriptionStatus": [
        {"topicName": "Offers", "subscriptionStatus": "OptIn"}]}  # fmt: skip
    assert _sns(_notification(record)).result == WebhookResult(ignored=1)


def test_ses_notification_format_without_event_publishing_is_understood() -> None:
    legacy = {key: value for key, value in SES_BOUNCE.items() if key != "eventType"}
    legacy["notificationType"] = "Bounce"
    legacy["mail"] = {key: value for key, value in SES_MAIL.items() if key != "tags"}  # notifications carry no tags
    result = _sns(_notification(legacy)).result
    assert [e["properties"]["bounce_type"] for e in result.events] == ["hard", "hard"]


@pytest.mark.parametrize(
    "message",
    [
        SES_SEND,
        {**SES_COMPLAINT, "complaint": {**SES_COMPLAINT["complaint"], "complaintFeedbackType": "not-spam"}},
        {"eventType": "DeliveryDelay", "mail": SES_MAIL, "deliveryDelay": {"delayType": "MailboxFull"}},
        "Successfully validated SNS topic for Amazon SES event publishing.",
    ],
)
def test_ses_records_without_customer_meaning_are_counted_as_ignored(message: Any) -> None:
    assert _sns(_notification(message)).result == WebhookResult(ignored=1)


def test_ses_redelivered_notification_yields_the_same_message_ids() -> None:
    envelope = _notification(SES_BOUNCE)
    first, again = _sns(envelope).result, _sns(envelope).result
    assert [e["messageId"] for e in first.events] == [e["messageId"] for e in again.events]
    other = _sns(_notification(SES_BOUNCE, message_id="0d2f1b6e-other")).result
    assert not {e["messageId"] for e in first.events} & {e["messageId"] for e in other.events}


def test_sns_malformed_envelopes_are_refused() -> None:
    _refused(lambda: parse_sns_envelope(b"<xml/>"), 400, "json_invalid")
    _refused(lambda: parse_sns_envelope(json.dumps({**_notification({}), "Type": "Bogus"}).encode()), 400, "sns_type")
    unsigned = {key: value for key, value in _notification(SES_BOUNCE).items() if key != "Signature"}
    _refused(lambda: parse_sns_envelope(json.dumps(unsigned).encode()), 401, "signature_missing")
    no_topic = {key: value for key, value in _notification(SES_BOUNCE).items() if key != "TopicArn"}
    _refused(lambda: parse_sns_envelope(json.dumps(no_topic).encode()), 400, "payload_shape")
    error = _refused(lambda: _sns(_notification("{not json")), 400, "json_invalid")
    assert error.field == "Message"


# --- Mailgun ---------------------------------------------------------------------------------

MAILGUN_SIGNING_KEY = "d2f1c6a0e5b94c3f8a7e6d5c4b3a2910"
MAILGUN_TOKEN = "651869375b9df3c98fc15c4889b102119add1235c38fc92824"
MAILGUN_DELIVERED: dict[str, Any] = {
    "tags": [],
    "timestamp": 1534108637.153125,
    "storage": {"url": "https://sw.api.mailgun.net/v3/domains/example.org/messages/eyJwI...", "key": "eyJwI..."},
    "recipient-domain": "example.com",
    "id": "hTWCTD81RtiDN-fGJsOGkA",
    "campaigns": [],
    "user-variables": dict(OUR_TAGS),
    "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
    "log-level": "info",
    "envelope": {"sending-ip": "198.51.100.200", "sender": "test@example.org", "transport": "smtp",
                 "targets": "recipient@example.com"},
    "message": {"headers": {"to": "recipient@example.com", "from": "test@example.org", "subject": "Testing",
                            "message-id": "20180812211713.1.DF5966851B4BAA99@example.org"},
                "attachments": [], "size": 809},
    "recipient": "recipient@example.com",
    "event": "delivered",
    "delivery-status": {"tls": True, "mx-host": "smtp-in.example.com", "attempt-no": 1, "description": "",
                        "session-seconds": 3.57, "utf8": True, "code": 250, "message": "OK",
                        "certificate-verified": True},
}  # fmt: skip
MAILGUN_FAILED_PERMANENT: dict[str, Any] = {
    "event": "failed",
    "id": "G9Bn5sl1TC6nu79C8C0bwg",
    "severity": "permanent",
    "reason": "bounce",
    "recipient": "invalid@example.com",
    "timestamp": 1534110422.389832,
    "log-level": "error",
    "message": {"headers": {"to": "invalid@example.com", "message-id": "20180812214658.1.0DF563D0B3597700@example.org",
                            "from": "Test Sender <test@example.org>"}},
    "delivery-status": {"tls": True, "mx-host": "aspmx.l.example.org", "attempt-no": 1, "description": "",
                        "session-seconds": 2.95, "utf8": True, "code": 550,
                        "message": "5.1.1 The email account that you tried to reach does not exist.",
                        "certificate-verified": True},
}  # fmt: skip
MAILGUN_FAILED_TEMPORARY = {
    "event": "failed",
    "id": "Fs7-5t81S2ms-j-cHZ1-fQ",
    "severity": "temporary",
    "reason": "generic",
    "timestamp": 1534111899.659519,
    "log-level": "warn",
    "message": {"headers": {"to": "undeliverable@nomx.example.com",
                            "message-id": "20180812214638.1.4A7D468E9BC18C5D@example.org"}},
    "recipient": "undeliverable@nomx.example.com",
    "delivery-status": {"attempt-no": 3, "description": "No MX for nomx.example.com", "session-seconds": 0.0,
                        "retry-seconds": 1800, "code": 498, "message": "No MX for nomx.example.com"},
}  # fmt: skip
MAILGUN_OPENED: dict[str, Any] = {
    "event": "opened",
    "id": "-laxIqj9QWubsjY_3pTq_g",
    "timestamp": 1534109600.089676,
    "recipient": "recipient@example.com",
    "tags": ["welcome"],
    "user-variables": dict(OUR_TAGS),
    "message": {"headers": {"message-id": "20180812213139.1.BC6694A917BB7E6A@example.org"}},
    "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
    "ip": "203.0.113.9",
    "client-info": {"client-type": "browser", "client-os": "OS X", "device-type": "desktop", "client-name": "Chrome",
                    "user-agent": BROWSER},
}  # fmt: skip
MAILGUN_CLICKED = {**MAILGUN_OPENED, "event": "clicked", "id": "Ase7i2zsRYeDXztHGENqRA",
                   "url": "https://example.com/test"}  # fmt: skip
MAILGUN_COMPLAINED = {
    "event": "complained",
    "id": "ncV2XwymRUKbPek_MIM-Gw",
    "timestamp": 1377214260.049634,
    "log-level": "warn",
    "recipient": "recipient@example.com",
    "message": {"headers": {"to": "foo@recipient.com", "message-id": "20130718032413.263EE2E0926@example.org",
                            "from": "Sender Name <sender@example.org>", "subject": "We are not spammer"}},
}  # fmt: skip
MAILGUN_UNSUBSCRIBED = {
    "event": "unsubscribed",
    "id": "W3X4JOhFT-OZidZGKKr9iA",
    "timestamp": 1377213791.421473,
    "log-level": "info",
    "recipient": "recipient@example.com",
    "message": {"headers": {"message-id": "20130822232216.13966.79700@samples.mailgun.org"}},
}


def _mailgun_body(event_data: Any, *, key: str = MAILGUN_SIGNING_KEY, timestamp: float = NOW,
                  token: str = MAILGUN_TOKEN) -> bytes:  # fmt: skip
    return mailgun_body(event_data, key=key, timestamp=timestamp, token=token)


def _mailgun(body: bytes) -> WebhookResult:
    return handle_mailgun(body, signing_key=MAILGUN_SIGNING_KEY, now=NOW)


def _mailgun_event(event_data: dict[str, Any]) -> dict[str, Any]:
    result = _mailgun(_mailgun_body(event_data))
    assert result.ignored == 0
    [event] = result.events
    _valid(event)
    return event


def test_mailgun_signed_delivery_becomes_a_valid_event() -> None:
    result = _mailgun(_mailgun_body(MAILGUN_DELIVERED))

    assert result.replay_key == MAILGUN_TOKEN and result.ignored == 0
    [event] = result.events
    assert event["event"] == "Email Delivered" and event["messageId"] == "mailgun:hTWCTD81RtiDN-fGJsOGkA"
    assert event["userId"] == "user-7"
    assert event["timestamp"] == "2018-08-12T21:17:17.153Z"
    assert event["properties"] == {"email_id": "send-42", "rule_id": "rule-welcome", "campaign_id": "camp-3",
                                   "provider": "mailgun"}  # fmt: skip
    _valid(event)


def test_mailgun_events_map_to_the_catalogue() -> None:
    hard = _mailgun_event(MAILGUN_FAILED_PERMANENT)
    assert hard["event"] == "Email Bounced" and hard["properties"]["bounce_type"] == "hard"
    assert hard["properties"]["reason"] == "550 5.1.1 The email account that you tried to reach does not exist."
    assert hard["properties"]["email_id"] == "20180812214658.1.0DF563D0B3597700@example.org"  # no tags: Mailgun's id
    assert hard["anonymousId"] == _address_id("invalid@example.com")

    soft = _mailgun_event(MAILGUN_FAILED_TEMPORARY)
    assert soft["properties"]["bounce_type"] == "soft"
    assert soft["properties"]["reason"] == "498 No MX for nomx.example.com"

    opened = _mailgun_event(MAILGUN_OPENED)
    assert opened["event"] == "Email Opened" and opened["properties"]["machine_open"] is False
    assert opened["context"]["userAgent"] == BROWSER and opened["context"]["ip"] == "203.0.113.9"
    scanner = {**MAILGUN_OPENED, "client-info": {**MAILGUN_OPENED["client-info"], "user-agent": "python-requests/2.31"}}
    assert _mailgun_event(scanner)["properties"]["machine_open"] is True

    clicked = _mailgun_event(MAILGUN_CLICKED)
    assert clicked["event"] == "Email Link Clicked" and clicked["properties"]["link_url"] == "https://example.com/test"

    assert _mailgun_event(MAILGUN_COMPLAINED)["event"] == "Email Marked as Spam"
    unsubscribed = _mailgun_event(MAILGUN_UNSUBSCRIBED)
    assert unsubscribed["event"] == "Unsubscribed"
    assert unsubscribed["properties"]["email_id"] == "20130822232216.13966.79700@samples.mailgun.org"


@pytest.mark.parametrize(
    "event_data",
    [
        {**MAILGUN_DELIVERED, "event": "accepted", "id": "CCXMjJ7nQi2N3BPigGOdgQ"},
        {**MAILGUN_FAILED_PERMANENT, "reason": "suppress-unsubscribe", "id": "not-sent"},
        {**MAILGUN_DELIVERED, "event": "rejected", "recipient": None, "user-variables": {}},
    ],
)
def test_mailgun_events_without_customer_meaning_are_counted_as_ignored(event_data: dict[str, Any]) -> None:
    assert _mailgun(_mailgun_body(event_data)) == WebhookResult(ignored=1, replay_key=MAILGUN_TOKEN)


def test_mailgun_retried_event_yields_the_same_message_id() -> None:
    first = _mailgun(_mailgun_body(MAILGUN_OPENED))
    # Mailgun resends the original signature block on a retry, hours later.
    retried = handle_mailgun(_mailgun_body(MAILGUN_OPENED), signing_key=MAILGUN_SIGNING_KEY, now=NOW + 8 * 3600)
    assert [e["messageId"] for e in first.events] == [e["messageId"] for e in retried.events]
    assert first.events == retried.events


def test_mailgun_signature_by_another_key_is_refused() -> None:
    body = _mailgun_body(MAILGUN_DELIVERED, key="someone-elses-key")
    _refused(lambda: _mailgun(body), 401, "signature")


def test_mailgun_altered_token_is_refused() -> None:
    payload = json.loads(_mailgun_body(MAILGUN_DELIVERED))
    payload["signature"]["token"] = "f" * 50
    _refused(lambda: _mailgun(json.dumps(payload).encode()), 401, "signature")


@pytest.mark.parametrize("signed_at", [NOW - MAILGUN_MAX_AGE_S - 1, NOW + 301])
def test_mailgun_stale_or_future_signature_is_refused(signed_at: float) -> None:
    _refused(lambda: _mailgun(_mailgun_body(MAILGUN_DELIVERED, timestamp=signed_at)), 401, "stale_timestamp")


def test_mailgun_without_signature_is_refused() -> None:
    body = json.dumps({"event-data": MAILGUN_DELIVERED}).encode()
    _refused(lambda: _mailgun(body), 401, "signature_missing")


def test_mailgun_signed_but_malformed_body_is_a_bad_request() -> None:
    _refused(lambda: _mailgun(b"event=delivered&recipient=x"), 400, "json_invalid")
    _refused(lambda: _mailgun(b"[]"), 400, "payload_shape")
    error = _refused(lambda: _mailgun(_mailgun_body("delivered")), 400, "payload_shape")
    assert error.as_dict() == {"field": "event-data", "rule": "payload_shape",
                               "message": "a Mailgun webhook carries an event-data object"}  # fmt: skip
