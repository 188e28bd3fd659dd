"""The website chat's API as the widget calls it (httpx against the app; SQLite, no
ClickHouse): a browser source's key and origin, answers from the knowledge base, refusals of
bad input and floods, the hand-off to a case with its transcript, an agent's reply reaching the
visitor while the assistant stays silent, a rating, and each step's catalog event."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from interaction_factories import DispatchSetup, change, rule, trigger

from ecrm_interaction.api.app import create_app
from ecrm_interaction.assistant.identity import identity_token
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import conversations
from ecrm_interaction.storage.models import OutboxEvent
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.catalog import CATALOG, CatalogEvent
from ecrm_schemas.sources import editing

ADMIN = {"Authorization": "Bearer t0ken"}
SHOP = "https://shop.example"
KNOWLEDGE = """
articles:
  - id: returns-policy
    tags: [returns]
    translations:
      en: {title: "How do I return an item?", body: "Return any item within 30 days; print the free label at https://shop.example.com/returns.",
           questions: ["Can I send something back?", "How do returns work?"]}
      de: {title: "Wie schicke ich einen Artikel zurück?", body: "Innerhalb von 30 Tagen, mit dem kostenlosen Etikett.",
           questions: ["Kann ich etwas zurückschicken?"]}
  - id: delivery-times
    translations:
      en: {title: "How long does delivery take?", body: "Orders arrive in 2 to 4 working days within the EU.",
           questions: ["How long is shipping?", "How fast do you ship?"]}
"""


class Chat:
    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client, self.key = client, key
        self.id = self.token = ""

    async def start(self, origin: str = SHOP, **body: object) -> httpx.Response:
        answer = await self.client.post(
            "/v1/chat/conversations", json={"writeKey": self.key, **body}, headers={"Origin": origin}
        )
        if answer.status_code == 201:
            self.id, self.token = answer.json()["conversation_id"], answer.json()["token"]
        return answer

    def headers(self) -> dict[str, str]:
        return {"Origin": SHOP, "X-Conversation-Token": self.token}

    async def ask(self, text: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/chat/conversations/{self.id}/messages", json={"text": text}, headers=self.headers()
        )

    async def post(self, what: str, body: object = None) -> httpx.Response:
        return await self.client.post(f"/v1/chat/conversations/{self.id}/{what}", json=body, headers=self.headers())

    async def read(self, after: int = 0) -> httpx.Response:
        return await self.client.get(
            f"/v1/chat/conversations/{self.id}", params={"after": after}, headers=self.headers()
        )


def website(tmp_path: Path, origins: tuple[str, ...] = (SHOP,), warehouse: object = None, **settings: object
            ) -> tuple[httpx.AsyncClient, str, Store]:  # fmt: skip
    """The app with a browser source (its key returned) and the widget's settings, as a client."""
    with editing(tmp_path / "sources.json") as registry:
        _, key = registry.add("website", "browser", origins)
    configured = InteractionSettings(
        **{"database_url": f"sqlite:///{tmp_path}/i.db", "interaction_api_token": "t0ken",
           "collector_sources_file": tmp_path / "sources.json", "interaction_assistant_identity_secret": "s3cret",
           "interaction_support_hours": "always", **settings}  # type: ignore[arg-type]
    )  # fmt: skip
    engine = make_engine(configured.database_url)
    migrate(engine)
    store = Store(engine)
    app = create_app(configured, store, worker=None, warehouse=warehouse)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://interaction"), key, store


@pytest.fixture
async def shop(tmp_path: Path):
    # A two-article knowledge base scores lower than a whole one: a lower threshold than the default.
    client, key, store = website(
        tmp_path, interaction_chat_messages_per_minute=60, interaction_assistant_threshold=0.85
    )
    async with client:
        imported = await client.post(
            "/v1/knowledge-base/import", content=KNOWLEDGE, headers={**ADMIN, "Content-Type": "application/yaml"}
        )
        assert imported.json() == {"created": 2, "updated": 0}
        yield client, key, store


def _events(store: Store) -> list[tuple[str, dict]]:
    with store.sessions() as session:
        rows = session.query(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id).all()
        return [(r.name, orjson.loads(r.properties)) for r in rows]


async def test_a_visitor_gets_the_article_a_person_takes_over_and_the_assistant_goes_quiet(shop) -> None:
    client, key, store = shop
    chat = Chat(client, key)
    started = await chat.start(language="de-DE", page="/schuhe?utm_source=x", anonymous_id="aid-1")
    assert started.status_code == 201 and started.json()["language"] == "de"
    assert "automatische Assistent" in started.json()["messages"][0]["text"]

    answer = (await chat.ask("Kann ich meine Stiefel zurückgeben, wenn sie nicht passen?")).json()
    reply = answer["messages"][-1]
    assert reply["author"] == "assistant" and reply["article"]["id"] == "returns-policy"
    assert reply["article"]["language"] == "de" and reply["article"]["title"].startswith("Wie schicke")

    unsure = (await chat.ask("What is the capital of Peru?")).json()["messages"][-1]
    assert unsure["article"] is None and unsure["offer_person"] is True

    handed = await chat.post("handoff")
    assert handed.json()["status"] == "waiting" and "Team" in handed.json()["messages"][-1]["text"]
    [case] = store.read(case_store.cases, customer_id="aid-1")
    assert case.subject.startswith("Website chat: Kann ich meine Stiefel") and case.priority == "normal"
    _, [note] = store.read(case_store.case, case.id)
    assert "capital of Peru" in note.text and "visitor" in note.text

    quiet = (await chat.ask("Hallo? Ist da jemand?")).json()
    assert quiet["messages"][-1]["author"] == "visitor"  # no answer from the assistant any more
    listed = (await client.get("/v1/conversations", params={"case_id": case.id}, headers=ADMIN)).json()
    assert [c["id"] for c in listed] == [chat.id]
    sent = await client.post(
        f"/v1/conversations/{chat.id}/replies", json={"text": "Hallo, hier ist Lena."}, headers=ADMIN
    )
    assert sent.status_code == 201
    polled = (await chat.read(after=quiet["messages"][-1]["id"])).json()
    assert polled["status"] == "person" and [m["text"] for m in polled["messages"]] == ["Hallo, hier ist Lena."]

    resolved = await client.patch(f"/v1/cases/{case.id}", json={"status": "resolved"}, headers=ADMIN)
    assert resolved.status_code == 200 and (await chat.read()).json()["status"] == "closed"
    assert (await chat.ask("one more thing")).status_code == 409
    rated = await chat.post("rating", {"rating": 5})
    assert rated.json()["rating"] == 5

    names = [name for name, _ in _events(store)]
    for name, properties in _events(store):
        if name in CATALOG:
            CATALOG[name].properties.model_validate(properties)  # every step is a valid catalog event
    assert names.count(CatalogEvent.QUESTION_ANSWERED) == 1 and names.count(CatalogEvent.QUESTION_UNANSWERED) == 1
    assert {
        CatalogEvent.CONVERSATION_STARTED,
        CatalogEvent.CONVERSATION_HANDED_OFF,
        CatalogEvent.CONVERSATION_RATED,
        CatalogEvent.CASE_OPENED,
    } <= set(names)
    handed_off = next(p for n, p in _events(store) if n == CatalogEvent.CONVERSATION_HANDED_OFF)
    assert handed_off["reason"] == "unanswered" and handed_off["case_id"] == case.id
    figures = (await client.get("/v1/assistant/figures", headers=ADMIN)).json()
    assert (figures["questions"], figures["answered"], figures["handed_off"], figures["average_rating"]) == (
        2,
        1,
        1,
        5.0,
    )  # the question after the hand-off went to people
    unanswered = (await client.get("/v1/assistant/unanswered", headers=ADMIN)).json()
    assert [g["example"] for g in unanswered] == ["What is the capital of Peru?"]


async def test_asking_for_a_person_in_words_hands_off(shop) -> None:
    client, key, store = shop
    chat = Chat(client, key)
    await chat.start()
    answer = (await chat.ask("I want to talk to a human")).json()
    assert answer["status"] == "waiting"
    assert len(store.read(case_store.cases)) == 1


async def test_only_the_shops_identity_token_identifies_a_visitor(shop) -> None:
    client, key, _ = shop
    chat = Chat(client, key)
    assert (await chat.start(user_id="ada", user_token=identity_token("s3cret", "ada"))).json()["identified"]
    forged = await Chat(client, key).start(user_id="ada", user_token=identity_token("guess", "ada"))
    assert forged.status_code == 403 and forged.json()["error"]["errors"][0]["field"] == "user_token"
    claimed = await Chat(client, key).start(user_id="ada")  # a user id without its token is ignored
    assert claimed.status_code == 201 and not claimed.json()["identified"]
    anonymous = Chat(client, key)
    await anonymous.start()
    asked = (await anonymous.ask("where is my order 10442?")).json()["messages"][-1]
    assert "sign in" in asked["text"]


async def test_a_conversation_is_read_only_with_its_token_and_from_its_sites_origins(shop, tmp_path) -> None:
    client, key, _ = shop
    chat = Chat(client, key)
    await chat.start()
    other = Chat(client, key)
    await other.start()
    stolen = await client.get(
        f"/v1/chat/conversations/{chat.id}", headers={"Origin": SHOP, "X-Conversation-Token": other.token}
    )
    assert stolen.status_code == 404
    assert (await client.get(f"/v1/chat/conversations/{chat.id}", headers={"Origin": SHOP})).status_code == 401
    elsewhere = await Chat(client, key).start(origin="https://evil.example")
    assert elsewhere.status_code == 403 and elsewhere.json()["error"]["code"] == "origin_not_allowed"
    with editing(tmp_path / "sources.json") as registry:
        _, server_key = registry.add("backend", "server")
    await asyncio.sleep(1.1)  # the registry file is re-read within a second of a change
    server = await Chat(client, server_key).start()
    assert server.status_code == 403 and server.json()["error"]["code"] == "browser_key_required"
    unknown = await Chat(client, "wkb_nope").start()
    assert unknown.status_code == 401 and unknown.json()["error"]["errors"][0]["rule"] == "unknown_key"
    preflight = await client.options(
        "/v1/chat/conversations",
        headers={
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-conversation-token",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"
    api = await client.options("/v1/cases", headers={"Origin": SHOP, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in api.headers  # only the chat is cross-origin


async def test_bad_input_gets_a_clear_refusal_and_floods_a_rate_limit(shop) -> None:
    client, key, _ = shop
    chat = Chat(client, key)
    await chat.start()
    huge = await chat.ask("x" * 5000)
    assert huge.status_code == 422 and huge.json()["error"]["errors"][0]["field"] == "text"
    blank = await chat.ask(" \x00\x07 ")
    assert blank.status_code == 422
    script = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    kept = (await chat.ask(script)).json()["messages"]
    assert kept[-2]["text"] == script  # stored and returned as text: the widget never renders HTML
    bad_json = await client.post(
        f"/v1/chat/conversations/{chat.id}/messages",
        content=b"{nope",
        headers={**chat.headers(), "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 422
    statuses = [(await chat.ask(f"question {i}")).status_code for i in range(12)]
    assert 429 in statuses and set(statuses) <= {200, 429}
    limited = await chat.ask("again")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


async def test_outside_business_hours_the_visitor_hears_when_people_are_back_and_leaves_an_address(tmp_path) -> None:
    client, key, store = website(tmp_path, ("*",), interaction_support_hours="mon 00:00-00:01")
    async with client:
        chat = Chat(client, key)
        started = (await chat.start()).json()
        assert started["support_open"] is False and started["support_back_at"].startswith("20")
        handed = (await chat.post("handoff")).json()
        assert "back Monday" in handed["messages"][-1]["text"] and handed["status"] == "waiting"
        left = (await chat.post("contact", {"email": "ada@example.com"})).json()
        assert "ada@example.com" in left["messages"][-1]["text"]
        assert (await chat.post("contact", {"email": "not an address"})).status_code == 422
        [case] = store.read(case_store.cases)
        _, notes = store.read(case_store.case, case.id)
        assert any("ada@example.com" in n.text for n in notes)


async def test_a_rule_on_a_hand_off_routes_the_chats_case_instead_of_opening_another(tmp_path, smtp_sink) -> None:
    setup = DispatchSetup(tmp_path, smtp_sink)
    with setup.store.sessions.begin() as session:
        opening = conversations.Opening("tok", "website", "u1", True, "en", "/")
        chat = conversations.start(session, opening, "Hi", setup.noon)
        hand = conversations.HandOff("Website chat: help", "normal", 8, "requested", True)
        case_id = conversations.hand_off(session, chat, hand, setup.noon)
    vip = rule(
        id="vip-chat",
        trigger={"kind": "event", "event": "Conversation Handed Off"},
        actions=[{"kind": "case", "subject": "VIP chat", "priority": "urgent", "assignee": "lena@shop.example"}],
    )
    setup.rules(vip)
    setup.take(
        change(
            trigger(
                "track",
                "Conversation Handed Off",
                message_id="h1",
                conversation_id=chat.id,
                case_id=case_id,
                reason="requested",
                during_hours=True,
                language="en",
            )
        )
    )
    await setup.tick()
    await setup.tick(setup.noon + timedelta(seconds=1))
    [case] = setup.store.read(case_store.cases)
    assert (case.id, case.priority, case.assignee) == (case_id, "urgent", "lena@shop.example")


EVENT_COLUMNS = [
    "message_id",
    "customer_id",
    "user_id",
    "anonymous_id",
    "type",
    "event",
    "timestamp",
    "sent_at",
    "received_at",
    "properties",
    "traits",
    "context",
    "source_partition",
    "source_offset",
]


@pytest.mark.clickhouse
async def test_an_identified_visitor_reads_their_own_orders_from_clickhouse_and_nobody_elses(
    tmp_path, clickhouse_server
) -> None:
    import uuid
    from datetime import UTC, datetime

    from ecrm_aggregator.migrate import migrate as migrate_clickhouse
    from ecrm_interaction.api.services.warehouse import Warehouse

    database = f"chat_{uuid.uuid4().hex[:8]}"
    client = clickhouse_server.client(tz_mode="aware")
    migrate_clickhouse(client, database)
    day = datetime(2026, 11, 28, 10, tzinfo=UTC)

    def event(customer: str, name: str, offset: int, **properties: object) -> list[object]:
        at = day + timedelta(hours=offset)
        return [
            str(uuid.uuid4()),
            customer,
            customer,
            "",
            "track",
            name,
            at,
            None,
            at,
            orjson.dumps(properties).decode(),
            "{}",
            "{}",
            0,
            offset,
        ]

    client.insert(
        f"{database}.events",
        [
            event("ada", "Order Completed", 0, order_id="A-10442", total=89.9, currency="EUR"),
            event(
                "ada",
                "Shipment Updated",
                5,
                order_id="A-10442",
                status="in_transit",
                carrier="DHL",
                tracking_id="JD014",
            ),
            event("bob", "Order Completed", 1, order_id="B-20001", total=15, currency="EUR"),
            event("bob", "Shipment Updated", 6, order_id="B-20001", status="delivered"),
        ],
        column_names=EVENT_COLUMNS,
    )
    http, key, _ = website(tmp_path, ("*",), Warehouse(clickhouse_server.service_client(), database))
    async with http:
        chat = Chat(http, key)
        await chat.start(user_id="ada", user_token=identity_token("s3cret", "ada"))
        mine = (await chat.ask("Where is my order?")).json()["messages"][-1]["text"]
        assert "A-10442" in mine and "is on its way" in mine and "JD014" in mine
        theirs = (await chat.ask("where is order 20001?")).json()["messages"][-1]["text"]
        assert "can't find order 20001" in theirs and "delivered" not in theirs
        bob_as_ada = Chat(http, key)  # ada's token names ada only: claiming bob with it is refused
        refused = await bob_as_ada.start(user_id="bob", user_token=identity_token("s3cret", "ada"))
        assert refused.status_code == 403
