"""ESP webhook routes against the real broker: signed provider requests in, email events on Kafka.

The SES case runs the whole SNS flow over HTTP: the collector fetches the signing
certificate and confirms the subscription from a local stand-in for the SNS host (the
certificate-URL pattern is pointed at it, as it points at AWS in production).
"""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from esp_signing import SENDGRID_VERIFICATION_KEY, certificate, mailgun_body, sendgrid_signature, sns_sign

from ecrm_collector.app import create_app
from ecrm_collector.esp_webhooks import SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_embedded.testing import read_topic
from ecrm_schemas.events import decode_event
from ecrm_schemas.topics import EVENTS

pytestmark = pytest.mark.kafka
MAILGUN_KEY = "mailgun-signing-key"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ecrm-ses"


class FakeSnsHost(BaseHTTPRequestHandler):
    """Serves the signing certificate and records subscription confirmations."""

    confirmations: list[str] = []

    def do_GET(self) -> None:
        if self.path.startswith("/cert.pem"):
            body = certificate()
        else:
            FakeSnsHost.confirmations.append(self.path)
            body = b"<ConfirmSubscriptionResponse/>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def sns_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSnsHost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _settings(bootstrap: str, sns_host: str, **overrides: object) -> CollectorSettings:
    values: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap,
        "collector_sendgrid_verification_key": SENDGRID_VERIFICATION_KEY,
        "collector_mailgun_signing_key": MAILGUN_KEY,
        "collector_ses_topic_arns": TOPIC,
        "collector_sns_cert_url_pattern": f"^{sns_host}/",
        **overrides,
    }
    return CollectorSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(kafka_broker, sns_host):
    settings = _settings(kafka_broker.bootstrap, sns_host)
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        yield http
    producer.close()


def _events_of(bootstrap: str, user: str) -> list:
    return [e for _, v in read_topic(bootstrap, EVENTS.name, expect=10_000, timeout_s=2) if (e := decode_event(v))
            .userId == user]  # fmt: skip


async def test_sendgrid_signed_events_reach_kafka_and_a_bad_signature_is_401(client, kafka_broker) -> None:
    events = [
        {"email": "a@example.com", "timestamp": 1795000000, "event": "delivered", "sg_event_id": "sg-1",
         "sg_message_id": "m1", "ecrm_user_id": "sg-user", "ecrm_email_id": "send-1"},
        {"email": "a@example.com", "timestamp": 1795000100, "event": "bounce", "type": "bounce", "reason": "550",
         "sg_event_id": "sg-2", "sg_message_id": "m1", "ecrm_user_id": "sg-user", "ecrm_email_id": "send-1"},
        {"email": "a@example.com", "timestamp": 1795000000, "event": "processed", "sg_event_id": "sg-0"},
    ]  # fmt: skip
    body = json.dumps(events).encode()
    signature, timestamp = sendgrid_signature(body, time.time())
    headers = {SENDGRID_SIGNATURE_HEADER: signature, SENDGRID_TIMESTAMP_HEADER: timestamp}
    ok = await client.post("/v1/email/events/sendgrid", content=body, headers=headers)
    assert ok.status_code == 200, ok.text
    assert (ok.json()["accepted"], ok.json()["ignored"]) == (2, 1)
    forged = await client.post("/v1/email/events/sendgrid", content=body.replace(b"550", b"551"), headers=headers)
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "signature")

    stored = {e.event: e for e in _events_of(kafka_broker.bootstrap, "sg-user")}
    assert set(stored) == {"Email Delivered", "Email Bounced"}
    assert stored["Email Bounced"].properties["bounce_type"] == "hard"
    assert stored["Email Bounced"].messageId == "sendgrid:sg-2"


async def test_mailgun_signed_event_reaches_kafka_once_and_a_replayed_signature_is_dropped(client, kafka_broker):
    event = {"event": "complained", "id": "mg-1", "timestamp": time.time(), "recipient": "b@example.com",
             "user-variables": {"ecrm_user_id": "mg-user", "ecrm_email_id": "send-2"}}  # fmt: skip
    body = mailgun_body(event, key=MAILGUN_KEY, timestamp=time.time(), token="tok-1")
    first = await client.post("/v1/email/events/mailgun", content=body)
    assert (first.status_code, first.json()["accepted"]) == (200, 1)
    forged_event = event | {"id": "mg-2", "event": "unsubscribed"}
    replay = mailgun_body(forged_event, key=MAILGUN_KEY, timestamp=int(json.loads(body)["signature"]["timestamp"]),
                          token="tok-1")  # fmt: skip
    replayed = await client.post("/v1/email/events/mailgun", content=replay)
    assert (replayed.status_code, replayed.json()["accepted"]) == (200, 0)
    wrong_key = mailgun_body(event, key="guess", timestamp=time.time(), token="tok-2")
    assert (await client.post("/v1/email/events/mailgun", content=wrong_key)).status_code == 401

    stored = [e.event for e in _events_of(kafka_broker.bootstrap, "mg-user")]
    assert stored == ["Email Marked as Spam"]


async def test_ses_through_sns_confirms_the_subscription_then_stores_bounces(client, kafka_broker, sns_host) -> None:
    cert_url = f"{sns_host}/cert.pem"
    confirm = sns_sign({
        "Type": "SubscriptionConfirmation", "MessageId": "c-1", "Token": "t", "TopicArn": TOPIC,
        "Message": "confirm", "SubscribeURL": f"{sns_host}/?Action=ConfirmSubscription&Token=t",
        "Timestamp": "2026-11-20T10:00:00.000Z", "SignatureVersion": "2", "SigningCertURL": cert_url})  # fmt: skip
    confirmed = await client.post("/v1/email/events/ses", content=json.dumps(confirm))
    assert confirmed.status_code == 200, confirmed.text
    assert FakeSnsHost.confirmations == ["/?Action=ConfirmSubscription&Token=t"]

    ses = {"eventType": "Bounce",
           "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2026-11-20T10:01:00.000Z",
                      "bouncedRecipients": [{"emailAddress": "c@example.com", "diagnosticCode": "smtp; 550 no"}]},
           "mail": {"timestamp": "2026-11-20T10:00:59.000Z", "messageId": "ses-m-1", "destination": ["c@example.com"],
                    "tags": {"ecrm_user_id": ["ses-user"], "ecrm_email_id": ["send-3"]}}}  # fmt: skip
    notification = sns_sign({
        "Type": "Notification", "MessageId": "n-1", "TopicArn": TOPIC, "Message": json.dumps(ses),
        "Timestamp": "2026-11-20T10:01:01.000Z", "SignatureVersion": "2", "SigningCertURL": cert_url})  # fmt: skip
    stored = await client.post("/v1/email/events/ses", content=json.dumps(notification))
    assert (stored.status_code, stored.json()["accepted"]) == (200, 1)
    other_topic = sns_sign(notification | {"TopicArn": "arn:aws:sns:eu-west-1:999:not-ours", "Signature": ""})
    assert (await client.post("/v1/email/events/ses", content=json.dumps(other_topic))).status_code == 403
    elsewhere = sns_sign(notification | {"SigningCertURL": "https://attacker.example/cert.pem"})
    assert (await client.post("/v1/email/events/ses", content=json.dumps(elsewhere))).status_code == 401

    [bounce] = _events_of(kafka_broker.bootstrap, "ses-user")
    assert (bounce.event, bounce.properties["bounce_type"], bounce.properties["email_id"]) == (
        "Email Bounced",
        "hard",
        "send-3",
    )


async def test_a_provider_without_its_setting_is_off(kafka_broker, sns_host) -> None:
    settings = _settings(kafka_broker.bootstrap, sns_host, collector_mailgun_signing_key=None)
    producer = AsyncProducer(settings.kafka_client_config())
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        response = await http.post("/v1/email/events/mailgun", content=b"{}")
    producer.close()
    assert (response.status_code, response.json()["error"]["code"]) == (404, "provider_not_enabled")
    assert "COLLECTOR_MAILGUN_SIGNING_KEY" in response.json()["error"]["message"]
