"""Provider events about our own mail name the customer who was sent it.

With tags: every configured ESP finds ours in its header of the raw message, and the
collector's webhook parsers read back exactly what was sent. Without tags (an ESP that
dropped them, mail to an address only): the recipient address, linked to the customer at
send time, still brings a bounce home, and the customer is suppressed.
"""

import email
import hashlib
import hmac
import json
import os
import re
import time
from datetime import UTC, datetime

import httpx
import pytest
from esp_signing import SENDGRID_VERIFICATION_KEY, sendgrid_signature
from interaction_factories import change, rule, trigger

from ecrm_collector.esp_webhooks import mailgun_events, sendgrid_events, ses_message_events
from ecrm_embedded.net import free_port
from ecrm_embedded.stack import Stack, StackSettings
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.rules import LoyaltyProgram, TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store, make_engine, migrate

NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)


def raw_headers(raw: bytes) -> dict[str, str]:
    """The message's headers as a provider reads them: unfolded (line breaks removed), not decoded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n(?=[ \t])", "", head)
    return {name.lower(): value for name, _, value in (line.partition(": ") for line in unfolded.split("\r\n"))}


@pytest.mark.smtp
async def test_every_configured_provider_reads_our_tags_back_from_the_raw_message(tmp_path, smtp_sink) -> None:
    settings = InteractionSettings(
        database_url=f"sqlite:///{tmp_path}/i.db",
        smtp_url=smtp_sink.url,
        interaction_quiet_hours="off",
        interaction_email_providers="sendgrid, ses, mailgun",
        interaction_ses_configuration_set="ecrm-events",
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    store.write(rule_store.upsert_rules, [TemplateSpec(id="t", subject="Hi", text="Hello")], [rule(id="welcome")])
    intake = IntakeStep(store, settings.tracking_secret.get_secret_value())
    rules, _ = store.read(rule_store.enabled_rules)
    with store.sessions.begin() as session:
        intake.profile_change(session, change(trigger(message_id="m1"), customer="u1"), rules, LoyaltyProgram(),
                              NOON, Intake())  # fmt: skip
    await Dispatcher(settings, store, producer=None).tick(NOON)
    [action] = store.read(action_store.recent, customer_id="u1")
    [path] = smtp_sink.messages()
    raw = path.read_bytes()
    headers = raw_headers(raw)
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
    sent = {"userId": "u1", "email_id": action.id, "rule_id": "welcome"}

    def attributed(event: dict) -> dict:
        return {"userId": event.get("userId"), **{k: event["properties"].get(k) for k in ("email_id", "rule_id")}}

    # SendGrid returns X-SMTPAPI's unique_args as top-level keys of each event.
    unique_args = json.loads(headers["x-smtpapi"])["unique_args"]
    bounce = {"email": "ada@example.com", "event": "bounce", "type": "bounce", "sg_event_id": "e1",
              "timestamp": 1800000000, **unique_args}  # fmt: skip
    [event] = sendgrid_events([bounce]).events
    assert attributed(event) == sent

    # SES returns X-SES-MESSAGE-TAGS (name=value, comma-separated) as mail.tags {name: [value]}.
    tags = dict(pair.strip().split("=", 1) for pair in headers["x-ses-message-tags"].split(","))
    assert headers["x-ses-configuration-set"] == "ecrm-events"
    record = {"eventType": "Complaint", "mail": {"messageId": "ses-1", "destination": ["ada@example.com"],
              "tags": {name: [value] for name, value in tags.items()}},
              "complaint": {"complainedRecipients": [{"emailAddress": "ada@example.com"}]}}  # fmt: skip
    [event] = ses_message_events(record, sns_message_id="sns-1").events
    assert attributed(event) == sent

    # Mailgun returns X-Mailgun-Variables as event-data["user-variables"].
    data = {"event": "failed", "severity": "permanent", "id": "mg-1", "recipient": "ada@example.com",
            "timestamp": 1800000000, "user-variables": json.loads(headers["x-mailgun-variables"])}  # fmt: skip
    [event] = mailgun_events(data).events
    assert attributed(event) == sent


# --- the whole stack: a bounce without our tags -----------------------------------------------

KEY = "attribution-write-key"
MAILGUN_SIGNING_KEY = "mailgun-test-signing-key"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    settings = StackSettings(
        ecrm_data_dir=tmp_path_factory.mktemp("ecrm"),
        kafka_port=free_port(), clickhouse_port=free_port(), smtp_port=free_port(), collector_port=free_port(),
        interaction_port=free_port(), aggregator_metrics_port=free_port(), collector_write_keys=KEY,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:  # the services inherit these
        patch.setenv("COLLECTOR_MAILGUN_SIGNING_KEY", MAILGUN_SIGNING_KEY)
        patch.setenv("COLLECTOR_SENDGRID_VERIFICATION_KEY", SENDGRID_VERIFICATION_KEY)
        patch.setenv("INTERACTION_EMAIL_PROVIDERS", "sendgrid")
        running = Stack(settings)
        try:
            running.start()
            yield running
        finally:
            running.stop()


def _eventually(probe, timeout_s: float = 90.0, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def _mailgun_signature() -> dict[str, str]:
    timestamp, token = str(int(time.time())), hashlib.sha256(os.urandom(16)).hexdigest()
    signature = hmac.new(MAILGUN_SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.smtp
def test_a_bounce_for_our_own_mail_without_tags_suppresses_the_customer(stack: Stack) -> None:
    s = stack.settings
    collector, interaction = f"http://127.0.0.1:{s.collector_port}", f"http://127.0.0.1:{s.interaction_port}"
    api = {"Authorization": f"Bearer {s.interaction_api_token}"}
    address = "grace@example.com"
    response = httpx.post(f"{collector}/v1/identify", auth=(KEY, ""),
                          json={"userId": "grace", "traits": {"email": address, "firstName": "Grace"}})  # fmt: skip
    assert response.status_code == 200, response.text

    def welcomed() -> list:
        return [p for p in (stack.data_dir / "mail").glob("*.eml") if address.encode() in p.read_bytes()]

    assert _eventually(welcomed), "the welcome email is sent"
    welcome = email.message_from_bytes(welcomed()[0].read_bytes())
    assert "X-Mailgun-Variables" not in welcome  # Mailgun is not configured: it relays no tags of ours

    # Mailgun reports a permanent failure naming only the recipient (no user-variables).
    event_data = {"event": "failed", "severity": "permanent", "reason": "bounce", "id": "mg-bounce-grace",
                  "recipient": address, "timestamp": time.time(),
                  "message": {"headers": {"message-id": welcome["Message-ID"].strip("<>")}},
                  "delivery-status": {"code": 550, "message": "5.1.1 no such user"}}  # fmt: skip
    response = httpx.post(f"{collector}/v1/email/events/mailgun",
                          json={"signature": _mailgun_signature(), "event-data": event_data})  # fmt: skip
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text

    def suppressed() -> str | None:
        view = httpx.get(f"{interaction}/v1/customers/grace", headers=api)
        return view.json()["contact"]["suppressed"] if view.status_code == 200 else None

    assert _eventually(suppressed) == "hard_bounce", stack.data_dir


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.smtp
def test_a_sendgrid_complaint_carrying_the_tags_of_our_raw_message_suppresses_the_customer(stack: Stack) -> None:
    s = stack.settings
    collector, interaction = f"http://127.0.0.1:{s.collector_port}", f"http://127.0.0.1:{s.interaction_port}"
    api = {"Authorization": f"Bearer {s.interaction_api_token}"}
    address = "hopper@example.com"
    response = httpx.post(f"{collector}/v1/identify", auth=(KEY, ""),
                          json={"userId": "hopper", "traits": {"email": address}})  # fmt: skip
    assert response.status_code == 200, response.text

    def welcomed() -> list:
        return [p for p in (stack.data_dir / "mail").glob("*.eml") if address.encode() in p.read_bytes()]

    assert _eventually(welcomed), "the welcome email is sent"
    unique_args = json.loads(raw_headers(welcomed()[0].read_bytes())["x-smtpapi"])["unique_args"]
    assert unique_args["ecrm_user_id"] == "hopper"
    # SendGrid echoes the unique_args as top-level keys; the event names a forwarding address,
    # so only the tags can bring it home.
    body = json.dumps([{"email": "forwarded@elsewhere.example", "event": "spamreport", "timestamp": int(time.time()),
                        "sg_event_id": "sg-complaint-hopper", **unique_args}]).encode()  # fmt: skip
    signature, signed_at = sendgrid_signature(body, time.time())
    response = httpx.post(f"{collector}/v1/email/events/sendgrid", content=body, headers={
        "content-type": "application/json", "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": signed_at})  # fmt: skip
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text

    def suppressed() -> str | None:
        view = httpx.get(f"{interaction}/v1/customers/hopper", headers=api)
        return view.json()["contact"]["suppressed"] if view.status_code == 200 else None

    assert _eventually(suppressed) == "complaint", stack.data_dir


# --- the service's own events: marked by the producer, not by the message id ------------------


def _profile_change_triggers(stack: Stack, customer: str, wanted, timeout_s: float = 90.0) -> list[dict]:
    """The triggers of ``customer``'s profile changes on Kafka, read until ``wanted(triggers)``."""
    from confluent_kafka import Consumer

    from ecrm_schemas.topics import PROFILE_CHANGES

    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{stack.settings.kafka_port}",
                         "group.id": f"own-events-test-{customer}-{time.time_ns()}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([PROFILE_CHANGES.name])
    triggers: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not wanted(triggers) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            change = json.loads(message.value())
            if change["customer_id"] == customer:
                triggers += change["triggers"]
    finally:
        consumer.close()
    return triggers


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.clickhouse
@pytest.mark.smtp
def test_the_services_own_events_are_marked_by_its_producer_and_a_clients_lookalike_id_is_not(stack: Stack) -> None:
    """The interaction service's report of the welcome email comes back marked as its own (the
    ``ecrm-producer`` Kafka header, carried by the aggregator into ``TriggerEvent.origin``). A
    back end's unsubscribe with a message id in the service's namespace is a client's event:
    it unsubscribes the customer (before, the id alone made it "own", and it was ignored)."""
    s = stack.settings
    collector, interaction = f"http://127.0.0.1:{s.collector_port}", f"http://127.0.0.1:{s.interaction_port}"
    api = {"Authorization": f"Bearer {s.interaction_api_token}"}
    response = httpx.post(f"{collector}/v1/identify", auth=(KEY, ""),
                          json={"userId": "turing", "traits": {"email": "turing@example.com"}})  # fmt: skip
    assert response.status_code == 200, response.text

    def email_sent(triggers: list[dict]) -> list[dict]:
        return [t for t in triggers if t.get("event") == "Email Sent"]

    [sent] = email_sent(_profile_change_triggers(stack, "turing", email_sent))[:1] or [None]
    assert sent is not None, "the service's Email Sent report reaches the profile change"
    assert sent["message_id"].startswith("ecrm-interaction-") and sent["origin"] == "interaction"

    forged_id = "ecrm-interaction-unsubscribe-turing"
    response = httpx.post(f"{collector}/v1/track", auth=(KEY, ""), json={
        "userId": "turing", "event": "Unsubscribed", "messageId": forged_id, "origin": "interaction",
        "properties": {}, "context": {"ecrm_producer": "interaction"}})  # fmt: skip
    assert response.status_code == 200, response.text

    def forged(triggers: list[dict]) -> list[dict]:
        return [t for t in triggers if t["message_id"] == forged_id]

    [client] = forged(_profile_change_triggers(stack, "turing", forged))[:1] or [None]
    assert client is not None and client["origin"] == "client"

    def unsubscribed() -> str | None:
        view = httpx.get(f"{interaction}/v1/customers/turing", headers=api)
        return view.json()["contact"]["unsubscribed_at"] if view.status_code == 200 else None

    assert _eventually(unsubscribed), "a client's unsubscribe is acted on whatever its message id"
