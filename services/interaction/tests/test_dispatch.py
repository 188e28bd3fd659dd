"""The dispatcher against a real SMTP server on loopback, a real HTTP receiver and SQLite:
what is sent, once, under the contact policy, and what happens when a server is down."""

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from interaction_factories import DispatchSetup, change, rule, trigger
from standardwebhooks.webhooks import Webhook

from ecrm_embedded.net import free_port
from ecrm_embedded.smtp_sink import SmtpSink
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.delivery.webhooks import signing_key
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import loyalty as loyalty_store
from ecrm_interaction.storage.contacts import contact as contact_of
from ecrm_interaction.storage.customers import SegmentRow, write_segments

pytestmark = pytest.mark.smtp
NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)
WELCOME = TemplateSpec(
    id="t",
    subject="Hi {{ traits.firstName }}",
    text="Hello {{ traits.firstName }}",
    html='<html><body><a href="https://shop.example.com/">Shop</a></body></html>',
)


class Setup(DispatchSetup):
    default_templates = (WELCOME,)


@pytest.fixture
def setup(tmp_path, smtp_sink):
    return Setup(tmp_path, smtp_sink)


async def test_an_email_is_sent_once_with_unsubscribe_headers_and_tracked_links(setup) -> None:
    setup.rules(rule(id="welcome", once_per_customer=True))
    assert setup.take(change(trigger(message_id="m1"), firstName="Ada")).planned == 1
    await setup.tick()
    assert setup.take(change(trigger(message_id="m1"), firstName="Ada")).planned == 0  # redelivered
    assert setup.take(change(trigger(message_id="m2"), firstName="Ada")).planned == 0  # once per customer
    await setup.tick(NOON + timedelta(minutes=5))
    [mail] = setup.mails()
    [action] = setup.store.read(action_store.recent, customer_id="u1")
    assert mail["Subject"] == "Hi Ada" and mail["To"] == "ada@example.com"
    assert mail["Message-ID"] == f"<{action.id}@ecrm.localhost>"
    assert mail["List-Unsubscribe"].startswith("<http://127.0.0.1:8081/u/")
    assert "<mailto:unsubscribe@ecrm.localhost?subject=unsubscribe%20" in mail["List-Unsubscribe"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = mail.get_body(("html",)).get_content()
    assert "http://127.0.0.1:8080/v1/e/c/" in html and "/v1/e/o/" in html and 'href="https://shop' not in html
    assert (action.status, action.reason, action.subject) == ("sent", "allowed", "Hi Ada")


async def test_the_contact_policy_suppresses_defers_and_caps(tmp_path, smtp_sink) -> None:
    setup = Setup(tmp_path, smtp_sink, interaction_quiet_hours="21:00-08:00")
    setup.rules(
        rule(id="news"),
        rule(id="receipt", category="transactional", trigger={"kind": "event", "event": "Order Completed"}),
    )
    with setup.store.sessions.begin() as session:
        customer_store.mark_unsubscribed(session, "gone", NOON)
    setup.take(change(trigger(message_id="a"), customer="gone"))
    setup.take(change(trigger(message_id="b"), customer="night", timezone="Europe/Oslo"))
    setup.take(change(trigger(message_id="c"), customer="busy"))
    late = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)  # 22:30 in Oslo, 21:30 in UTC: both quiet
    await setup.tick(late)
    outcomes = {a.customer_id: (a.status, a.reason) for a in setup.store.read(action_store.recent)}
    assert outcomes["gone"] == ("suppressed", "unsubscribed")
    assert outcomes["night"] == ("deferred", "quiet_hours") and outcomes["busy"][0] == "deferred"
    [night] = setup.store.read(action_store.recent, customer_id="night")
    assert night.due_at.replace(tzinfo=UTC) == datetime(2026, 11, 21, 7, tzinfo=UTC)  # 08:00 in Oslo
    morning = datetime(2026, 11, 21, 8, 5, tzinfo=UTC)
    await setup.tick(morning)
    assert {a.customer_id for a in setup.store.read(action_store.recent, status="sent")} == {"night", "busy"}
    # A second marketing mail the same day is capped; a receipt is not.
    setup.take(change(trigger(message_id="d"), customer="busy"), morning)
    setup.take(change(trigger("track", "Order Completed", message_id="e", total=10), customer="busy"), morning)
    await setup.tick(morning + timedelta(minutes=1))
    latest = {a.rule_id: (a.status, a.reason) for a in setup.store.read(action_store.recent, customer_id="busy")[:2]}
    assert latest == {"news": ("suppressed", "frequency_cap_1_per_1d"), "receipt": ("sent", "allowed")}
    assert len(setup.mails()) == 3


async def test_an_smtp_outage_delays_the_send_and_loses_nothing(tmp_path) -> None:
    port = free_port()
    sink = SmtpSink(tmp_path / "mail", port=port)  # not started: the server is down
    setup = Setup(tmp_path, sink)
    setup.rules(rule(id="welcome"))
    setup.take(change(trigger(message_id="m1"), firstName="Ada"))
    await setup.tick()
    [action] = setup.store.read(action_store.recent)
    assert (action.status, action.attempts) == ("pending", 1) and action.last_error.startswith("smtp:")
    await setup.tick(NOON + timedelta(seconds=1))  # before its backoff: not tried again
    assert setup.store.read(action_store.recent)[0].attempts == 1
    sink.start()
    try:
        await setup.tick(NOON + timedelta(minutes=1))
        await setup.tick(NOON + timedelta(minutes=2))
        assert len(setup.mails()) == 1 and setup.store.read(action_store.recent)[0].status == "sent"
    finally:
        sink.stop()


async def test_a_wait_is_cancelled_by_the_event_it_names(setup) -> None:
    setup.rules(
        rule(
            id="cart",
            trigger={"kind": "event", "event": "Product Added"},
            wait={"duration": "1h", "cancel_on": [{"event": "Order Completed"}]},
        )
    )
    setup.take(change(trigger("track", "Product Added", message_id="p1", product_id="x"), customer="buyer"))
    setup.take(change(trigger("track", "Product Added", message_id="p2", product_id="x"), customer="browser"))
    await setup.tick(NOON + timedelta(minutes=10))
    assert {a.status for a in setup.store.read(action_store.recent)} == {"waiting"}
    setup.take(
        change(trigger("track", "Order Completed", message_id="o1", total=5), customer="buyer"),
        NOON + timedelta(minutes=30),
    )
    await setup.tick(NOON + timedelta(hours=1, minutes=1))
    outcome = {a.customer_id: (a.status, a.reason) for a in setup.store.read(action_store.recent)}
    assert outcome["buyer"] == ("cancelled", "wait cancelled by Order Completed (o1)")
    assert outcome["browser"] == ("sent", "allowed")
    assert [m["To"] for m in setup.mails()] == ["ada@example.com"] and len(setup.mails()) == 1


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


async def test_webhooks_are_signed_and_private_addresses_refused_unless_allowed(tmp_path, smtp_sink, receiver) -> None:
    hook = {"kind": "webhook", "url": receiver, "secret": SECRET}
    refused = Setup(tmp_path / "a", smtp_sink)
    refused.rules(rule(actions=[hook]))
    refused.take(change(trigger(message_id="m1")))
    await refused.tick()
    [action] = refused.store.read(action_store.recent)
    assert action.status == "failed" and action.reason.startswith("unsafe_target: 127.0.0.1 resolves to a non-public")
    assert Receiver.received == []

    allowed = Setup(tmp_path / "b", smtp_sink, interaction_webhook_allowed_hosts="127.0.0.1")
    allowed.rules(rule(actions=[hook]))
    allowed.take(change(trigger(message_id="m1")))
    await allowed.tick()
    [(headers, body)] = Receiver.received
    payload = Webhook(signing_key(SECRET)).verify(body, headers)
    assert payload["customer_id"] == "u1" and payload["rule"]["id"] == "r"
    tampered = dict(headers, **{"webhook-signature": "v1,AAAA"})
    with pytest.raises(Exception, match="signature"):
        Webhook(signing_key(SECRET)).verify(body, tampered)
    assert allowed.store.read(action_store.recent)[0].status == "done"


async def test_cases_escalate_past_their_sla_and_points_and_rewards_are_issued_once(tmp_path, smtp_sink) -> None:
    setup = Setup(tmp_path, smtp_sink, interaction_escalation_email="manager@shop.example.com")
    gold = rule(
        id="gold",
        category="transactional",
        trigger={"kind": "trait", "trait": "loyalty.tier", "becomes": "gold"},
        actions=[{"kind": "reward", "reward": "gold-voucher"}, {"kind": "email", "template": "code"}],
    )
    detractor = rule(
        id="nps",
        trigger={"kind": "event", "event": "NPS Answered", "where": {"score": {"lte": 6}}},
        actions=[
            {"kind": "case", "subject": "NPS {{ event.properties.score }}", "priority": "high", "sla": "4h"},
            {"kind": "points", "points": 1980, "reason": "sorry"},
        ],
    )
    setup.rules(gold, detractor, templates=[TemplateSpec(id="code", subject="Your code", text="{{ reward.code }}")])
    setup.take(change(trigger("track", "NPS Answered", message_id="n1", score=3, survey_id="s")))
    await setup.tick()  # the case opens; 1980 + 20 (the answer itself) points make gold: the reward rule fires
    await setup.tick(NOON + timedelta(seconds=1))
    [case] = setup.store.read(case_store.cases, customer_id="u1")
    assert (case.subject, case.priority, case.status) == ("NPS 3", "high", "open")
    balance, _, [reward] = setup.store.read(loyalty_store.ledger, "u1")
    assert balance == 2000 and reward.reward == "gold-voucher"
    [code_mail] = setup.mails()
    assert code_mail.get_body(("plain",)).get_content().strip() == reward.code
    await setup.tick(NOON + timedelta(hours=5))  # past the SLA
    await setup.tick(NOON + timedelta(hours=6))  # escalated once only
    escalations = [m for m in setup.mails() if m["To"] == "manager@shop.example.com"]
    assert len(escalations) == 1 and case.id in escalations[0].get_body(("plain",)).get_content()
    assert json.loads(setup.store.read(action_store.recent, kind="case")[0].payload)["action"]["sla"] == "4h"


async def test_a_schedule_fires_once_per_slot_for_its_segments_members(setup) -> None:
    weekly = rule(id="news", trigger={"kind": "schedule", "cron": "0 9 * * MON", "segment": "vip"})
    setup.rules(weekly)
    setup.take(change(trigger(message_id="a"), customer="in", email="in@example.com"))
    setup.take(change(trigger(message_id="b"), customer="out", email="out@example.com"))
    with setup.store.sessions.begin() as session:
        write_segments(session, [SegmentRow("in", "vip", "VIP", NOON)], [])
    friday = datetime(2026, 11, 20, 12, tzinfo=UTC)
    await setup.tick(friday)  # a new schedule starts from now: nothing for the past
    assert setup.store.read(action_store.recent, kind="email") == []
    monday = datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)
    await setup.tick(monday)
    await setup.tick(monday + timedelta(minutes=1))  # the same slot does not fire again
    [sent] = setup.store.read(action_store.recent, kind="email")
    assert (sent.customer_id, sent.status, sent.cause) == ("in", "sent", "c:2026-11-23T09:00:00+00:00")


async def test_notifications_reach_a_team_by_email_and_chat(tmp_path, smtp_sink, receiver) -> None:
    setup = Setup(tmp_path, smtp_sink, interaction_webhook_allowed_hosts="127.0.0.1")
    message = "{{ profile.customer_id }} ordered {{ event.properties.total }}: {{ reason }}"
    setup.rules(
        rule(
            id="vip-order",
            trigger={"kind": "event", "event": "Order Completed"},
            actions=[
                {"kind": "notify", "emails": ["sales@shop.example.com"], "chat_webhook": receiver, "message": message}
            ],
        )
    )
    setup.take(change(trigger("track", "Order Completed", message_id="o1", total=500)))
    await setup.tick()
    [(_, body)] = Receiver.received
    assert json.loads(body) == {"text": "u1 ordered 500: Order Completed"}
    [mail] = setup.mails()
    assert mail["To"] == "sales@shop.example.com" and "u1 ordered 500" in mail.get_body(("plain",)).get_content()
    assert setup.store.read(action_store.recent)[0].status == "done"


async def test_a_wait_planned_earlier_in_the_same_batch_is_cancelled_too(setup) -> None:
    """The intake reads a batch's waiting actions once; a wait planned by an earlier change of
    the batch must still be cancelled by a later one."""
    setup.rules(
        rule(
            id="cart",
            trigger={"kind": "event", "event": "Product Added"},
            wait={"duration": "1h", "cancel_on": [{"event": "Order Completed"}]},
        )
    )
    outcome = setup.take(
        [
            change(trigger("track", "Product Added", message_id="p1", product_id="x"), customer="buyer"),
            change(trigger("track", "Order Completed", message_id="o1", total=5), customer="buyer"),
            change(trigger("track", "Order Completed", message_id="o2", total=5), customer="browser"),
        ],
        NOON,
    )
    assert outcome.cancelled == 1
    assert [(a.customer_id, a.status) for a in setup.store.read(action_store.recent)] == [("buyer", "cancelled")]
    assert setup.store.read(action_store.recent, status="waiting") == []


async def test_the_unsubscribe_link_in_the_body_is_not_click_tracked(setup) -> None:
    footer = TemplateSpec(
        id="t",
        subject="News",
        text="Unsubscribe: {{ unsubscribe_url }}",
        html='<html><body><a href="https://shop.example.com/">Shop</a>'
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
    )
    setup.rules(rule(id="news"), templates=[footer])
    setup.take(change(trigger(message_id="m1")))
    await setup.tick()
    [mail] = setup.mails()
    html = mail.get_body(("html",)).get_content()
    [unsubscribe] = [h for h in re.findall(r'href="([^"]+)"', html) if "/u/" in h or "Unsubscribe" in h] or [""]
    assert unsubscribe.startswith("http://127.0.0.1:8081/u/"), html  # straight to our page, no redirect
    assert mail["List-Unsubscribe"].startswith(f"<{unsubscribe}>")
    assert html.count("/v1/e/c/") == 1  # the shop link only


async def test_a_failed_render_leaves_one_log_line_without_personal_data(setup) -> None:
    from structlog.testing import capture_logs

    # Valid syntax, but fails for this customer on line 2 (the money filter refuses a name).
    failing = TemplateSpec(id="t", subject="Hi", text="Hello\n{{ traits.firstName | money }}")
    setup.rules(rule(id="welcome"), templates=[failing])
    setup.take(change(trigger(message_id="m1"), firstName="Ada"))
    with capture_logs() as logs:
        await setup.tick()
    [action] = setup.store.read(action_store.recent)
    assert action.status == "failed" and action.reason.startswith("render_failed")
    [line] = [entry for entry in logs if entry["event"] == "render_failed"]
    assert line == {"event": "render_failed", "log_level": "warning", "rule": "welcome", "template": "t",
                    "action": action.id, "part": "text", "error": "ValueError", "line": 2}  # fmt: skip
    assert "Ada" not in str(logs) and "ada@example.com" not in str(logs)


@pytest.mark.kafka
async def test_mail_to_the_list_unsubscribe_mailto_unsubscribes_the_customer(tmp_path, smtp_sink, kafka_broker,
                                                                              monkeypatch) -> None:  # fmt: skip
    from email.message import EmailMessage
    from urllib.parse import parse_qs, unquote, urlsplit

    from typer.testing import CliRunner

    from ecrm_interaction.__main__ import cli

    setup = Setup(tmp_path, smtp_sink)
    setup.rules(rule(id="news"))
    setup.take(change(trigger(message_id="m1")))
    await setup.tick()
    [mail] = setup.mails()
    [mailto] = [t for t in re.findall(r"<([^<>]+)>", mail["List-Unsubscribe"]) if t.startswith("mailto:")]
    target = urlsplit(mailto)
    reply = EmailMessage()  # what a mail client sends for the mailto: link
    reply["From"], reply["To"] = "ada@example.com", unquote(target.path)
    reply["Subject"] = parse_qs(target.query)["subject"][0]
    path = tmp_path / "reply.eml"
    path.write_bytes(bytes(reply))
    forged = tmp_path / "forged.eml"
    forged.write_bytes(bytes(EmailMessage()) + b"Subject: unsubscribe not-a-token\n\n")
    monkeypatch.setenv("DATABASE_URL", setup.settings.database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap)
    result = CliRunner().invoke(cli, ["unsubscribe-mail", str(forged), str(path)])
    assert result.exit_code == 0, result.output
    assert "forged.eml: ignored" in result.output and "reply.eml: unsubscribed" in result.output
    assert reply["To"] == "unsubscribe@ecrm.localhost"
    assert setup.store.read(contact_of, "u1").unsubscribed


@pytest.mark.kafka
async def test_a_send_links_the_address_to_its_user_and_staff_mail_carries_no_provider_tags(
    tmp_path, smtp_sink, kafka_broker
) -> None:
    from ecrm_embedded.testing import read_topic
    from ecrm_schemas.email_tags import address_anonymous_id
    from ecrm_schemas.kafka_admin import ensure_topics
    from ecrm_schemas.kafka_producer import ReliableProducer
    from ecrm_schemas.topics import EVENTS

    setup = Setup(tmp_path, smtp_sink, interaction_email_providers="mailgun",
                  kafka_bootstrap_servers=kafka_broker.bootstrap)  # fmt: skip
    ensure_topics(setup.settings.kafka_client_config())
    setup.dispatcher = Dispatcher(setup.settings, setup.store, ReliableProducer(setup.settings.kafka_client_config()))
    notify = {"kind": "notify", "emails": ["sales@shop.example.com"], "message": "{{ profile.customer_id }}"}
    setup.rules(rule(id="welcome", actions=[{"kind": "email", "template": "t"}, notify]))
    setup.take(change(trigger(message_id="m1")))
    anonymous = change(trigger(message_id="m2"), customer="a-1", email="anon@example.com")
    anonymous.profile.user_id, anonymous.profile.anonymous_id = None, "a-1"
    setup.take(anonymous)
    await setup.tick()
    mails = {m["To"]: m for m in setup.mails()}
    assert "X-Mailgun-Variables" in mails["ada@example.com"] and "X-Mailgun-Variables" in mails["anon@example.com"]
    assert "X-Mailgun-Variables" not in mails["sales@shop.example.com"]  # a bounce there is not the customer's
    events = [json.loads(v) for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=6, timeout_s=8)]
    aliases = [e for e in events if e["type"] == "alias"]
    assert [(a["previousId"], a["userId"]) for a in aliases] == [(address_anonymous_id("ada@example.com"), "u1")]
    assert {e["event"] for e in events if e["type"] == "track"} >= {"Email Sent"}


async def test_actions_planned_by_the_consumer_go_out_at_once_when_it_wakes_the_dispatcher(tmp_path, smtp_sink) -> None:
    """The consumer of the same process wakes the dispatcher after a batch that planned actions
    (from its own thread): the email does not wait for the next tick, here 30 s away."""
    import asyncio
    import time

    setup = Setup(tmp_path, smtp_sink, interaction_dispatch_interval_s=30)
    setup.rules(rule())
    stopping = asyncio.Event()
    running = asyncio.create_task(setup.dispatcher.run(stopping))
    try:
        await asyncio.sleep(0.3)  # the first tick: nothing due yet
        assert setup.mails() == []
        now = datetime.now(UTC)
        assert setup.take(change(trigger(message_id="m1", at=now), firstName="Ada"), now).planned == 1
        woken_at = time.monotonic()
        threading.Thread(target=setup.dispatcher.wake).start()
        while not setup.mails() and time.monotonic() - woken_at < 10:
            await asyncio.sleep(0.05)
        assert [m["Subject"] for m in setup.mails()] == ["Hi Ada"]
        assert time.monotonic() - woken_at < 5, "sent on waking, not at the next tick"
    finally:
        stopping.set()
        await running
