"""Contact state that belongs to the address, cases as support agents work them, and the
datetimes of the API (issue 16: symptoms 4, 19 and 20)."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from interaction_factories import T0, change, rule, trigger
from sqlalchemy import update
from typer.testing import CliRunner

from ecrm_interaction.__main__ import cli
from ecrm_interaction.api.app import create_app
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.contact_policy import Contact, History, address_digest, decide
from ecrm_interaction.engine.planning import PlannedAction
from ecrm_interaction.engine.rules import LoyaltyProgram, TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import outbox
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage import suppressions as suppression_store
from ecrm_interaction.storage.actions import insert_actions, new_action
from ecrm_interaction.storage.contacts import contact as contact_of
from ecrm_interaction.storage.customers import SegmentRow, write_segments
from ecrm_interaction.storage.models import Action
from ecrm_interaction.storage.store import Store
from ecrm_schemas.validation import validate_event

ADMIN = {"Authorization": "Bearer t0ken"}


def _take(store: Store, *changes, rules=(), now=T0) -> Intake:
    outcome = Intake()
    with store.sessions.begin() as session:
        for c in changes:
            IntakeStep(store, "s").profile_change(session, c, list(rules), LoyaltyProgram(), now, outcome)
    return outcome


def _sent(store: Store, action_id: str, customer: str, recipient: str) -> None:
    """An email action that went out to ``recipient``."""
    planned = PlannedAction(f"k-{action_id}", "email", "r", customer, "marketing", "m:x", "pending", T0, {})
    with store.sessions.begin() as session:
        insert_actions(session, [new_action(planned, T0)])
    [row] = store.read(action_store.recent, customer_id=customer)
    with store.sessions.begin() as session:
        session.execute(
            update(Action)
            .where(Action.id == row.id)
            .values(id=action_id, status="sent", recipient=recipient, done_at=T0)
        )


# --- 4. a suppression belongs to the address ------------------------------------------------


def test_a_hard_bounce_suppresses_the_address_and_a_new_address_is_mailed(relational_store) -> None:
    store = relational_store
    _take(store, change(trigger(message_id="i1"), email="old@example.com"))
    _sent(store, "e1", "u1", "old@example.com")
    # The customer gives a new address; the bounce of the mail sent to the old one arrives after.
    bounce = trigger("track", "Email Bounced", message_id="b1", email_id="e1", bounce_type="hard")
    _take(store, change(trigger(message_id="i2"), email="new@example.com"), change(bounce, email="new@example.com"))
    contact = store.read(contact_of, "u1")
    assert (contact.email, contact.suppressed) == ("new@example.com", None), "the new address is not suppressed"
    assert store.read(suppression_store.of_address, "OLD@example.com ").reason == "hard_bounce"
    verdict = decide(Contact(contact.email, suppressed=contact.suppressed), History(), "marketing", None, T0)
    assert verdict.outcome == "send"
    # Another customer who identifies with the bounced address is not mailed there.
    _take(store, change(trigger(message_id="i3"), customer="u2", email="old@example.com"))
    assert store.read(contact_of, "u2").suppressed == "hard_bounce"
    # Without an email id, the bounce is about the customer's current address.
    _take(
        store, change(trigger("track", "Email Bounced", message_id="b2", bounce_type="hard"), email="new@example.com")
    )
    assert store.read(contact_of, "u1").suppressed == "hard_bounce"
    row = store.read(suppression_store.of_address, "new@example.com")
    assert (row.reason, row.source, row.suppressed_at) == ("hard_bounce", "event:Email Bounced:b2", T0)
    assert row.address_digest == address_digest("new@example.com") and "@" not in row.address_digest


def test_a_spam_complaint_suppresses_the_address_and_unsubscribes_the_customer(relational_store) -> None:
    store = relational_store
    complaint = trigger("track", "Email Marked as Spam", message_id="c1", email_id="e9")
    _take(store, change(complaint, email="ada@example.com"))
    contact = store.read(contact_of, "u1")
    assert (contact.suppressed, contact.unsubscribed) == ("complaint", True)
    _take(store, change(trigger(message_id="i2"), email="ada@new.example.com"))
    moved = store.read(contact_of, "u1")
    assert moved.suppressed is None and moved.unsubscribed, "the new address gets receipts, not marketing"
    assert decide(Contact(moved.email, unsubscribed=True), History(), "transactional", None, T0).outcome == "send"


@pytest.fixture
def api(relational_store):
    settings = InteractionSettings(database_url="sqlite://", interaction_api_token="t0ken")
    store = relational_store
    store.write(rule_store.upsert_rules, [TemplateSpec(id="t", subject="s", text="x")], [rule()])
    return store, create_app(settings, store, worker=None)


@pytest.fixture
async def http(api):
    transport = httpx.ASGITransport(app=api[1])
    async with httpx.AsyncClient(transport=transport, base_url="http://interaction") as client:
        yield client


async def _token(http, role: str) -> dict[str, str]:
    created = await http.post("/v1/tokens", json={"name": f"{role}-1", "role": role}, headers=ADMIN)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['token']}"}


async def test_an_admin_lifts_a_suppression_and_the_audit_log_says_who_and_why(api, http) -> None:
    store, _ = api
    _take(store, change(trigger("track", "Email Bounced", message_id="b1", bounce_type="hard")))
    listed = (await http.get("/v1/suppressions", headers=ADMIN)).json()
    assert [(s["address_digest"], s["reason"]) for s in listed] == [(address_digest("ada@example.com"), "hard_bounce")]
    body = {"address": "Ada@Example.com", "reason": "the customer fixed their mailbox"}
    marketer = await _token(http, "marketer")
    assert (await http.post("/v1/suppressions/lift", json=body, headers=marketer)).status_code == 403
    lifted = await http.post("/v1/suppressions/lift", json=body, headers=ADMIN)
    assert lifted.status_code == 200 and lifted.json()["lifted_by"] == "bootstrap-admin"
    assert store.read(contact_of, "u1").suppressed is None
    assert (await http.get("/v1/suppressions", headers=ADMIN)).json() == []
    again = await http.post("/v1/suppressions/lift", json=body, headers=ADMIN)
    assert (again.status_code, again.json()["error"]["code"]) == (404, "suppression_not_found")
    missing = await http.post("/v1/suppressions/lift", json={"address": "x@example.com"}, headers=ADMIN)
    assert missing.status_code == 422 and missing.json()["error"]["errors"][0]["field"] == "reason"
    nothing = await http.post("/v1/suppressions/lift", json={"reason": "because"}, headers=ADMIN)
    assert [(e["field"], e["rule"]) for e in nothing.json()["error"]["errors"]] == [("address", "missing")]
    [entry] = [a for a in (await http.get("/v1/audit", headers=ADMIN)).json() if a["entity"] == "address_suppression"]
    assert (entry["action"], entry["entity_id"], entry["detail"]["reason"]) == (
        "lift",
        address_digest("ada@example.com"),
        "the customer fixed their mailbox",
    )
    assert "ada" not in orjson.dumps(entry).decode().lower(), "no address in the audit log"
    # A bounce from before the lift (a late webhook) does not undo it; a new bounce suppresses again.
    _take(store, change(trigger("track", "Email Bounced", message_id="b0", bounce_type="hard")))
    assert store.read(contact_of, "u1").suppressed is None
    later = datetime.now(UTC) + timedelta(minutes=1)
    _take(store, change(trigger("track", "Email Bounced", message_id="b2", at=later, bounce_type="hard")))
    assert store.read(contact_of, "u1").suppressed == "hard_bounce"


def test_the_cli_lists_and_lifts_a_suppression(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/i.db")
    runner = CliRunner()
    from ecrm_interaction.storage.store import make_engine, migrate

    store = Store(make_engine(f"sqlite:///{tmp_path}/i.db"))
    migrate(store.engine)
    _take(store, change(trigger("track", "Email Bounced", message_id="b1", bounce_type="hard")))
    listed = runner.invoke(cli, ["suppressions", "list"])
    assert (
        listed.exit_code == 0 and address_digest("ada@example.com") in listed.output and "hard_bounce" in listed.output
    )
    refused = runner.invoke(cli, ["suppressions", "lift", "ada@example.com"])
    assert refused.exit_code != 0 and "--reason" in refused.output
    lifted = runner.invoke(cli, ["suppressions", "lift", "ada@example.com", "--reason", "mailbox restored"])
    assert lifted.exit_code == 0, lifted.output
    assert store.read(contact_of, "u1").suppressed is None
    assert [(a.actor, a.action) for a in store.read(audit_log.recent) if a.entity == "address_suppression"] == [
        ("cli", "lift")
    ]
    assert runner.invoke(cli, ["suppressions", "lift", "ada@example.com", "--reason", "again"]).exit_code != 0


# --- 19. every datetime the API returns carries its zone -------------------------------------

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _datetimes(value: Any, path: str = "$") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _datetimes(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _datetimes(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) and _DATETIME.match(value) else []


async def test_every_datetime_the_api_returns_is_utc_with_its_offset(api, http) -> None:
    store, _ = api
    _take(store, change(trigger("track", "Order Completed", message_id="o1", order_id="o1", total=120)))
    _sent(store, "e1", "u1", "ada@example.com")
    with store.sessions.begin() as session:
        write_segments(session, [SegmentRow("u1", "vip", "VIP", T0)], [])
    created = (await http.post("/v1/cases", json={"customer_id": "u1", "subject": "Late"}, headers=ADMIN)).json()
    await http.post(f"/v1/cases/{created['id']}/notes", json={"text": "Called"}, headers=ADMIN)
    await http.patch(f"/v1/cases/{created['id']}", json={"status": "resolved"}, headers=ADMIN)
    await http.put("/v1/customers/u1/consent/email", json={"granted": True}, headers=ADMIN)
    await _token(http, "viewer")
    answers = {}
    for path in ("/v1/cases", f"/v1/cases/{created['id']}", "/v1/customers/u1", "/v1/customers/u1/loyalty",
                 "/v1/decisions", "/v1/sends", "/v1/tokens", "/v1/audit"):  # fmt: skip
        answer = await http.get(path, headers=ADMIN)
        assert answer.status_code == 200, (path, answer.text)
        answers[path] = answer.json()
    found = _datetimes(answers)
    for field in ("sla_due_at", "created_at", "resolved_at", "due_at", "done_at", "since", "at", "sent_at"):
        assert any(path.endswith(f".{field}") for path, _ in found), f"no {field} was checked"
    naive = [(path, value) for path, value in found if not re.search(r"(Z|[+-]00:00)$", value)]
    assert naive == [], "datetimes without a UTC offset"
    case = answers[f"/v1/cases/{created['id']}"]
    due = datetime.fromisoformat(case["sla_due_at"])
    assert due.utcoffset() == timedelta(0) and due - datetime.fromisoformat(case["created_at"]) == timedelta(hours=24)


# --- 20. cases as support agents work them ------------------------------------------------------


async def test_an_agent_works_cases_but_cannot_change_what_marketers_own(api, http) -> None:
    agent = await _token(http, "agent")
    created = await http.post("/v1/cases", json={"customer_id": "u1", "subject": "Parcel lost"}, headers=agent)
    assert created.status_code == 201
    case_id = created.json()["id"]
    assert (await http.post(f"/v1/cases/{case_id}/notes", json={"text": "Called"}, headers=agent)).status_code == 201
    patched = await http.patch(f"/v1/cases/{case_id}", json={"assignee": "bob", "status": "pending"}, headers=agent)
    assert (patched.status_code, patched.json()["assignee"]) == (200, "bob")
    assert (await http.get("/v1/rules", headers=agent)).status_code == 200
    assert (await http.get("/v1/customers/u1", headers=agent)).status_code == 200
    for method, path, body in (
        ("POST", "/v1/rules/r/disable", None),
        ("PUT", "/v1/templates/t", {"id": "t", "subject": "s", "text": "y"}),
        ("PUT", "/v1/loyalty/program", {}),
        ("PUT", "/v1/segments/vip", {"id": "vip", "name": "VIP", "condition": {}}),
        ("PUT", "/v1/customers/u1/consent/email", {"granted": True}),
    ):
        answer = await http.request(method, path, json=body, headers=agent)
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "forbidden"), path
    viewer = await _token(http, "viewer")
    refused = await http.post(f"/v1/cases/{case_id}/notes", json={"text": "x"}, headers=viewer)
    assert refused.status_code == 403
    [token] = [t for t in (await http.get("/v1/tokens", headers=ADMIN)).json() if t["name"] == "agent-1"]
    assert token["role"] == "agent"


def test_the_token_cli_creates_an_agent_token(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/i.db")
    created = CliRunner().invoke(cli, ["tokens", "add", "desk", "--role", "agent"])
    assert created.exit_code == 0, created.output
    assert "desk\tagent\tactive" in CliRunner().invoke(cli, ["tokens", "list"]).output


async def test_notes_show_in_case_lists_and_the_customer_view(api, http) -> None:
    store, _ = api
    _take(store, change(trigger(message_id="i1")))
    case_id = (await http.post("/v1/cases", json={"customer_id": "u1", "subject": "Refund"}, headers=ADMIN)).json()[
        "id"
    ]
    await http.post(f"/v1/cases/{case_id}/notes", json={"text": "Asked for the receipt"}, headers=ADMIN)
    [listed] = (await http.get("/v1/cases?customer_id=u1", headers=ADMIN)).json()
    assert [n["text"] for n in listed["notes"]] == ["Asked for the receipt"]
    [in_view] = (await http.get("/v1/customers/u1", headers=ADMIN)).json()["cases"]
    assert [(n["author"], n["text"]) for n in in_view["notes"]] == [("bootstrap-admin", "Asked for the receipt")]


async def test_cases_opened_and_resolved_through_the_api_are_reported_as_events(api, http) -> None:
    store, _ = api
    _take(store, change(trigger(message_id="i1")))
    case_id = (
        await http.post("/v1/cases", json={"customer_id": "u1", "subject": "Refund", "priority": "high"}, headers=ADMIN)
    ).json()["id"]
    await http.patch(f"/v1/cases/{case_id}", json={"assignee": "bob"}, headers=ADMIN)
    await http.patch(f"/v1/cases/{case_id}", json={"status": "resolved"}, headers=ADMIN)
    await http.patch(f"/v1/cases/{case_id}", json={"status": "resolved"}, headers=ADMIN)  # no change: no event
    with store.sessions() as session:
        unpublished = outbox.unpublished_events(session)
    events = [(e.name, orjson.loads(e.properties)) for e in unpublished]
    assert [(name, props["case_id"], props.get("status")) for name, props in events] == [
        ("Case Opened", case_id, "open"),
        ("Case Updated", case_id, "open"),
        ("Case Resolved", case_id, "resolved"),
    ]
    assert events[0][1]["priority"] == "high" and events[1][1]["assignee"] == "bob"
    for row in unpublished:
        event = {"type": "track", "event": row.name, "userId": row.customer_id, "messageId": row.message_id,
                 "timestamp": row.created_at.isoformat(), "receivedAt": row.created_at.isoformat(),
                 "properties": orjson.loads(row.properties)}  # fmt: skip
        validate_event(event)  # the catalog knows each name and its properties


async def test_a_detractors_comment_is_the_first_note_of_the_case_it_opens(relational_store) -> None:
    store = relational_store
    detractor = rule(
        id="nps",
        trigger={"kind": "event", "event": "NPS Answered", "where": {"score": {"lte": 6}}},
        actions=[{"kind": "case", "subject": "NPS {{ event.properties.score }}", "priority": "high"}],
    )
    store.write(rule_store.upsert_rules, [], [detractor])
    answer = trigger("track", "NPS Answered", message_id="n1", score=2, survey_id="s", comment="Delivery took 3 weeks")
    _take(store, change(answer), rules=[detractor])
    settings = InteractionSettings(database_url="sqlite://", interaction_quiet_hours="")
    await Dispatcher(settings, store, producer=None).tick(T0 + timedelta(seconds=1))
    [case] = store.read(case_store.cases, customer_id="u1")
    _, notes = store.read(case_store.case, case.id)
    assert [(n.author, n.text) for n in notes] == [("customer (NPS Answered)", "Delivery took 3 weeks")]
    assert case.created_at.tzinfo is not None and case.created_at == T0 + timedelta(seconds=1)


def test_datetimes_read_from_the_store_are_aware_utc(relational_store) -> None:
    """Written in any zone, read back in UTC, even where PostgreSQL answers in another zone."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import text

    from ecrm_interaction.storage.models import CustomerSegment

    store = relational_store
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with store.sessions.begin() as session:
        write_segments(session, [SegmentRow("u1", "vip", "VIP", noon.astimezone(ZoneInfo("Europe/Berlin")))], [])
    [row] = store.read(customer_store.segments, "u1")
    assert row.since == noon and str(row.since.tzinfo) == "UTC"
    with store.sessions.begin() as session:
        if store.engine.dialect.name == "postgresql":
            session.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        since = session.get(CustomerSegment, ("u1", "vip")).since
    assert since == noon and str(since.tzinfo) == "UTC" and since.isoformat().endswith("+00:00")
