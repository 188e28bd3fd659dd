"""Broadcasts through the API, sent by the real dispatcher to a real SMTP sink (SQLite or
PostgreSQL store), with opens, clicks and orders read from a real ClickHouse (chdb): the
audience shown is what goes out, the rate spreads due times, pause holds, resume sends the
rest once, cancel stops, the holdout is never mailed, and the results name a winner with
its uncertainty."""

from __future__ import annotations

import email
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import policy as email_policy

import httpx
import orjson
import pytest

from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import (
    Action,
    AddressSuppression,
    BroadcastRecipient,
    Consent,
    Customer,
    CustomerSegment,
)
from ecrm_interaction.storage.store import Store, make_engine, migrate

pytestmark = pytest.mark.smtp
ADMIN = {"Authorization": "Bearer t0ken"}
NEWS = TemplateSpec(
    id="news", subject="News for {{ traits.firstName }}", text="Hello {{ traits.firstName }}",
    html='<html><body><a href="https://shop.example.com/sale">Sale</a></body></html>',
)  # fmt: skip
OTHER = TemplateSpec(id="other", subject="Other news", text="Hello")


class World:
    """The interaction service's store, API and dispatcher, sending to the SMTP sink."""

    def __init__(self, store: Store, settings: InteractionSettings, sink, warehouse: Warehouse | None = None) -> None:
        self.store, self.settings, self.sink = store, settings, sink
        self.dispatcher = Dispatcher(settings, store, producer=None)
        self.app = create_app(settings, store, worker=None, dispatcher=self.dispatcher, warehouse=warehouse)
        store.write(rule_store.upsert_rules, [NEWS, OTHER], [])

    def customers(self, segment: str, *ids: str, **special: str) -> None:
        """Members of ``segment`` with an address and consent, unless ``special`` says otherwise
        (``unsubscribed``, ``no_consent``, ``hard_bounce``, ``no_email_address``, ``capped``)."""
        now = datetime.now(UTC)
        with self.store.sessions.begin() as session:
            for customer_id in ids:
                kind = special.get(customer_id, "")
                address = None if kind == "no_email_address" else f"{customer_id}@example.com"
                profile = {"customer_id": customer_id, "user_id": customer_id, "email": address, "version": 1,
                           "traits": {"firstName": customer_id.title()}}  # fmt: skip
                gone = now if kind == "unsubscribed" else None
                session.add(Customer(customer_id=customer_id, email=address, profile=orjson.dumps(profile).decode(),
                                     profile_version=1, unsubscribed_at=gone))  # fmt: skip
                session.add(Consent(customer_id=customer_id, channel="email", purpose="marketing",
                                    granted=kind != "no_consent", source="test", updated_at=now))  # fmt: skip
                session.add(CustomerSegment(customer_id=customer_id, segment_id=segment, segment_name=segment,
                                            since=now))  # fmt: skip
                if kind == "hard_bounce":
                    session.add(AddressSuppression(address_digest=address_digest(address or ""), reason="hard_bounce",
                                                   source="test", suppressed_at=now))  # fmt: skip
                if kind == "capped":  # a marketing email an hour ago: the 1-a-day cap holds
                    session.add(Action(id=str(uuid.uuid4()), dedup_key=f"earlier:{customer_id}", rule_id=None,
                                       customer_id=customer_id, kind="email", category="marketing", cause="test",
                                       status="sent", reason="allowed", due_at=now - timedelta(hours=1),
                                       payload="{}", done_at=now - timedelta(hours=1)))  # fmt: skip

    async def drain(self, now: datetime) -> None:
        """Dispatch until nothing more is due at ``now``."""
        for _ in range(20):
            before = len(self.sink.messages())
            await self.dispatcher.dispatch(now)
            if len(self.sink.messages()) == before:
                return

    def recipients(self) -> list[str]:
        mails = [email.message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in self.sink.messages()]
        return [str(m["To"]) for m in mails]

    def due_times(self, broadcast_id: str, *statuses: str) -> list[datetime]:
        """The due times of its messages (of those in ``statuses``, when given)."""
        with self.store.sessions() as session:
            query = (
                session.query(Action.due_at)
                .join(BroadcastRecipient, BroadcastRecipient.action_id == Action.id)
                .filter(BroadcastRecipient.broadcast_id == broadcast_id)
            )
            rows = (query.filter(Action.status.in_(statuses)) if statuses else query).all()
            return sorted(due for (due,) in rows)


def make_world(tmp_path, sink, store: Store | None = None, warehouse: Warehouse | None = None) -> World:
    settings = InteractionSettings(
        database_url=f"sqlite:///{tmp_path}/b.db", smtp_url=sink.url, interaction_quiet_hours="",
        interaction_api_token="t0ken", interaction_send_concurrency=50,
    )  # fmt: skip
    if store is None:
        engine = make_engine(settings.database_url)
        migrate(engine)
        store = Store(engine)
    return World(store, settings, sink, warehouse)


@pytest.fixture
def world(relational_store, tmp_path, smtp_sink) -> World:
    return make_world(tmp_path, smtp_sink, store=relational_store)


@pytest.fixture
async def http(world):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url="http://i") as client:
        yield client


SPECIAL = {"gone": "unsubscribed", "nocon": "no_consent", "bounced": "hard_bounce", "noaddr": "no_email_address",
           "capped": "capped"}  # fmt: skip


async def _broadcast(http, **fields) -> dict:
    body = {"name": "Winter sale", "segment_id": "vip", "template_id": "news", "rate_per_minute": 2} | fields
    created = await http.post("/v1/broadcasts", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return created.json()


async def test_the_audience_shown_is_what_is_sent_once_at_the_rate(world, http) -> None:
    world.customers("vip", "c1", "c2", "c3", "c4", "c5", "c6", *SPECIAL, **SPECIAL)
    world.customers("others", "outsider")
    made = await _broadcast(http)
    preview = (await http.get(f"/v1/broadcasts/{made['id']}/audience", headers=ADMIN)).json()
    assert preview["members"] == 11 and preview["to_send"] == 6 and preview["holdout"] == 0
    assert preview["excluded"] == {"unsubscribed": 1, "no_consent": 1, "hard_bounce": 1, "no_email_address": 1,
                                   "frequency_cap_1_per_1d": 1}  # fmt: skip
    scheduled = await http.post(f"/v1/broadcasts/{made['id']}/schedule", headers=ADMIN)
    assert scheduled.status_code == 200, scheduled.text
    start = datetime.fromisoformat(scheduled.json()["started_at"])
    # the rate: 2 messages due in each minute from the start
    assert Counter(int((d - start).total_seconds() // 60) for d in world.due_times(made["id"])) == {0: 2, 1: 2, 2: 2}
    await world.drain(start)
    assert len(world.recipients()) == 2
    await world.drain(start + timedelta(minutes=1))
    assert len(world.recipients()) == 4
    for minutes in (2, 3, 60):
        await world.drain(start + timedelta(minutes=minutes))
    assert sorted(world.recipients()) == [f"c{i}@example.com" for i in range(1, 7)], "exactly the audience, once"
    assert len(world.recipients()) == preview["to_send"]
    shown = (await http.get(f"/v1/broadcasts/{made['id']}", headers=ADMIN)).json()
    assert shown["status"] == "done" and shown["progress"]["A"] == {"sent": 6}
    results = (await http.get(f"/v1/broadcasts/{made['id']}/results", headers=ADMIN)).json()
    assert results["engagement"] == "unavailable" and results["variants"][0]["sent"] == 6
    actions = [e.action for e in world.store.read(audit_log.recent, 100) if e.entity == "broadcast"]
    assert sorted(actions) == ["create", "schedule"]


async def test_pause_holds_resume_sends_the_rest_once_and_cancel_stops(world, http) -> None:
    world.customers("vip", *(f"c{i}" for i in range(1, 7)))
    made = await _broadcast(http)
    start = datetime.fromisoformat(
        (await http.post(f"/v1/broadcasts/{made['id']}/schedule", headers=ADMIN)).json()["started_at"]
    )
    await world.drain(start)
    assert len(world.recipients()) == 2
    paused = await http.post(f"/v1/broadcasts/{made['id']}/pause", headers=ADMIN)
    assert paused.json()["status"] == "paused"
    await world.drain(start + timedelta(days=2))
    assert len(world.recipients()) == 2, "nothing goes while paused"
    again = await http.post(f"/v1/broadcasts/{made['id']}/pause", headers=ADMIN)
    assert again.status_code == 409 and again.json()["error"]["errors"][0]["field"] == "status"
    resumed = await http.post(f"/v1/broadcasts/{made['id']}/resume", headers=ADMIN)
    assert resumed.json()["status"] == "sending"
    later = world.due_times(made["id"], "pending")
    first = min(later)
    assert Counter(int((d - first).total_seconds() // 60) for d in later) == {0: 2, 1: 2}, "the rate again"
    await world.drain(first + timedelta(minutes=5))
    assert sorted(world.recipients()) == [f"c{i}@example.com" for i in range(1, 7)], "each once"

    world.customers("few", "d1", "d2", "d3", "d4")
    other = await _broadcast(http, segment_id="few")
    start = datetime.fromisoformat(
        (await http.post(f"/v1/broadcasts/{other['id']}/schedule", headers=ADMIN)).json()["started_at"]
    )
    await world.drain(start)
    cancelled = await http.post(f"/v1/broadcasts/{other['id']}/cancel", headers=ADMIN)
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["progress"]["A"] == {"sent": 2, "cancelled": 2}
    await world.drain(start + timedelta(days=1))
    assert len([r for r in world.recipients() if r.startswith("d")]) == 2
    assert (await http.post(f"/v1/broadcasts/{other['id']}/resume", headers=ADMIN)).status_code == 409


async def test_bad_input_is_refused_naming_the_field(world, http) -> None:
    world.customers("vip", "c1")
    cases = [
        ({"template_id": None}, "template_id"),
        ({"template_id": "nope"}, "template_id"),
        ({"segment_id": "nobody-here"}, "segment_id"),
        ({"rate_per_minute": 0}, "rate_per_minute"),
        ({"holdout_percent": 80}, "holdout_percent"),
        ({"template_id": None, "variants": [{"name": "A", "template": "news", "share": 50},
                                            {"name": "B", "template": "other", "share": 40}]}, "variants"),
        ({"template_id": None, "variants": [{"name": "A", "template": "news", "share": 50},
                                            {"name": "B", "template": "gone", "share": 50}]}, "variants.1.template"),
    ]  # fmt: skip
    for change, field in cases:
        body = {"name": "X", "segment_id": "vip", "template_id": "news"} | change
        answer = await http.post("/v1/broadcasts", json=body, headers=ADMIN)
        assert answer.status_code == 422, (change, answer.text)
        assert field in [e["field"] for e in answer.json()["error"]["errors"]], (change, answer.text)
    assert (await http.get("/v1/broadcasts", headers=ADMIN)).json() == [], "nothing half-saved"


@pytest.fixture
def warehouse(clickhouse_server):
    from ecrm_aggregator.migrate import migrate as migrate_clickhouse

    database = f"broadcasts_{uuid.uuid4().hex[:8]}"
    client = clickhouse_server.client(tz_mode="aware")
    migrate_clickhouse(client, database)
    return Warehouse(clickhouse_server.service_client(), database)


def _event(customer_id: str, name: str, at: datetime, **properties) -> list:
    return [str(uuid.uuid4()), customer_id, customer_id, "", "track", name, at, None, at,
            orjson.dumps(properties).decode(), "{}", "{}", 0, 0]  # fmt: skip


_COLUMNS = ["message_id", "customer_id", "user_id", "anonymous_id", "type", "event", "timestamp", "sent_at",
            "received_at", "properties", "traits", "context", "source_partition", "source_offset"]  # fmt: skip


@pytest.mark.clickhouse
async def test_ab_variants_and_holdout_with_the_winner_and_its_uncertainty(tmp_path, smtp_sink, warehouse) -> None:
    world = make_world(tmp_path, smtp_sink, warehouse=warehouse)
    ids = [f"m{i:02d}" for i in range(80)]
    world.customers("all", *ids)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url="http://i") as http:
        variants = [{"name": "A", "template": "news", "share": 50}, {"name": "B", "template": "other", "share": 50}]
        made = await _broadcast(http, segment_id="all", template_id=None, variants=variants, holdout_percent=25,
                                winner_metric="clicks", rate_per_minute=1000)  # fmt: skip
        preview = (await http.get(f"/v1/broadcasts/{made['id']}/audience", headers=ADMIN)).json()
        scheduled = (await http.post(f"/v1/broadcasts/{made['id']}/schedule", headers=ADMIN)).json()
        assert scheduled["audience"]["groups"] == preview["groups"], "the preview's groups are the scheduled ones"
        start = datetime.fromisoformat(scheduled["started_at"])
        await world.drain(start)
        with world.store.sessions() as session:
            placed = {r.customer_id: (r.variant, r.action_id) for r in session.query(BroadcastRecipient).all()}
        held = {c for c, (v, _) in placed.items() if v == "holdout"}
        assert 5 <= len(held) <= 40 and len(held) == preview["holdout"]
        sent_to = {r.split("@")[0] for r in world.recipients()}
        assert not sent_to & held, "the holdout is never mailed"
        assert len(sent_to) == preview["to_send"] == 80 - len(held)
        # every A message is clicked, one B message is; a third of each group orders (every
        # third member of it: the placement is random, the order rates stay the same)
        at = start + timedelta(minutes=5)
        rows = []
        ordering = set()
        for group in ("A", "B", "holdout"):
            ordering |= set(sorted(c for c, (v, _) in placed.items() if v == group)[::3])
        for customer_id, (variant, action_id) in placed.items():
            if variant == "A":
                rows.append(_event(customer_id, "Email Link Clicked", at, email_id=action_id,
                                   link_url="https://shop.example.com/sale"))  # fmt: skip
            if customer_id in ordering:
                rows.append(_event(customer_id, "Order Completed", at, order_id=f"o-{customer_id}", total=10))
        b_ids = sorted(a for v, a in placed.values() if v == "B")
        rows.append(_event("someone", "Email Opened", at, email_id=b_ids[0]))
        rows.append(_event("someone", "Email Link Clicked", at, email_id=b_ids[0], link_url="https://x.example/"))
        rows.append(_event("late", "Order Completed", start + timedelta(days=9), order_id="late", total=1))
        warehouse.client.insert(f"{warehouse.db}.events", rows, column_names=_COLUMNS)
        results = (await http.get(f"/v1/broadcasts/{made['id']}/results", headers=ADMIN)).json()
    a, b = results["variants"]
    assert a["sent"] == a["clicked"] == a["opened"] > 0 and (b["clicked"], b["opened"]) == (1, 1)
    assert a["click_rate"]["rate"] == 1.0 and a["click_rate"]["low"] < 1.0, "the interval shows the uncertainty"
    assert results["winner"]["name"] == "A" and results["winner"]["significant"] is True
    assert results["winner"]["p_value"] < 0.001
    expected_held = len(held & ordering)
    assert results["holdout"]["members"] == len(held) and results["holdout"]["converted"] == expected_held
    assert a["converted"] + b["converted"] == len(sent_to & ordering)
    assert results["holdout"]["significant"] is False, (
        "the same order rate with and without the mail",
        results["holdout"],
    )


async def test_the_policy_is_applied_again_as_each_message_goes(world, http) -> None:
    """Who unsubscribes after the broadcast was scheduled is not mailed: the dispatcher judges
    each message when it goes, and the progress counts it as suppressed."""
    from ecrm_interaction.storage import customers as customer_store

    world.customers("vip", "c1", "c2", "c3")
    made = await _broadcast(http)
    scheduled = (await http.post(f"/v1/broadcasts/{made['id']}/schedule", headers=ADMIN)).json()
    assert scheduled["audience"]["to_send"] == 3
    with world.store.sessions.begin() as session:
        customer_store.mark_unsubscribed(session, "c3", datetime.now(UTC))
    await world.drain(datetime.fromisoformat(scheduled["started_at"]) + timedelta(minutes=5))
    assert sorted(world.recipients()) == ["c1@example.com", "c2@example.com"]
    shown = (await http.get(f"/v1/broadcasts/{made['id']}", headers=ADMIN)).json()
    assert shown["status"] == "done" and shown["progress"]["A"] == {"sent": 2, "suppressed": 1}


async def test_a_drafts_audience_is_kept_as_counted_until_counted_again(world, http) -> None:
    """Judging every member of a large segment takes seconds: a draft keeps the count made when
    it was saved (and says when), ``POST .../audience`` counts it again, scheduling counts anew."""
    from ecrm_interaction.storage import customers as customer_store

    world.customers("vip", "c1", "c2", "c3")
    made = await _broadcast(http)
    assert made["audience"]["to_send"] == 3 and made["audience"]["counted_at"]
    with world.store.sessions.begin() as session:
        customer_store.mark_unsubscribed(session, "c3", datetime.now(UTC))
    kept = (await http.get(f"/v1/broadcasts/{made['id']}/audience", headers=ADMIN)).json()
    assert kept["to_send"] == 3 and kept["counted_at"] == made["audience"]["counted_at"] and not kept["frozen"]
    again = await http.post(f"/v1/broadcasts/{made['id']}/audience", headers=ADMIN)
    assert again.status_code == 200 and again.json()["to_send"] == 2
    assert again.json()["excluded"] == {"unsubscribed": 1}
    with world.store.sessions() as session:
        counts = [e for e in audit_log.of_entity(session, "broadcast", made["id"]) if e.action == "count"]
    assert len(counts) == 1 and counts[0].actor, "counting again is audited"
    assert (await http.get(f"/v1/broadcasts/{made['id']}/audience", headers=ADMIN)).json()["to_send"] == 2
    with world.store.sessions.begin() as session:
        customer_store.mark_unsubscribed(session, "c2", datetime.now(UTC))
    scheduled = (await http.post(f"/v1/broadcasts/{made['id']}/schedule", headers=ADMIN)).json()
    assert scheduled["audience"]["to_send"] == 1, "scheduling counts the audience anew"
    late = await http.post(f"/v1/broadcasts/{made['id']}/audience", headers=ADMIN)
    assert late.status_code == 409, "a scheduled broadcast's audience is fixed"
    viewer = await http.post(f"/v1/broadcasts/{made['id']}/audience")
    assert viewer.status_code == 401


def test_a_segments_contacts_read_with_its_membership_are_those_read_by_id(world) -> None:
    """The two ways :func:`contacts` and :func:`recent_messages` read (a thousand ids a query,
    or joined on a segment's membership) find the same facts."""
    from ecrm_interaction.storage import broadcasts as broadcast_store
    from ecrm_interaction.storage.contacts import contacts, recent_messages

    world.customers("vip", "c1", "c2", *SPECIAL, **SPECIAL)
    world.customers("others", "outsider", "capped2", capped2="capped")
    since = datetime.now(UTC) - timedelta(days=7)
    members = ["bounced", "c1", "c2", "capped", "gone", "noaddr", "nocon"]
    with world.store.sessions() as session:
        among = broadcast_store.membership("vip")
        assert sorted(session.scalars(among)) == members
        fallback = dict.fromkeys(members, "fallback@example.com")
        assert contacts(session, fallback, among) == contacts(session, fallback)
        assert contacts(session, fallback)["noaddr"].suppressed is None
        assert recent_messages(session, members, since, among) == recent_messages(session, members, since)
        assert len(recent_messages(session, members, since, among)["capped"]) == 1
