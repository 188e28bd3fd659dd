"""The Customers pages: the list (search, filters, pages), the Customer 360, and each of its
forms (inline errors on refusal, nothing half-saved, roles), on SQLite and a real ClickHouse."""

from __future__ import annotations

import pytest
from customer_seed import EMAIL_ID, seed_clickhouse, seed_relational

from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.storage import audit, cases
from ecrm_interaction.storage.models import AddressSuppression
from ecrm_interaction.storage.store import make_engine, migrate

pytestmark = pytest.mark.clickhouse


@pytest.fixture(scope="module")
def warehouse(clickhouse_server):
    client = clickhouse_server.client(tz_mode="aware")
    database = "console_customers"
    client.command(f"DROP DATABASE IF EXISTS {database}")
    seed_clickhouse(client, database)
    return Warehouse(clickhouse_server.service_client(), database)


@pytest.fixture
def console_app(tmp_path, warehouse):
    """The console's app (as conftest's) with the seeded ClickHouse and Alice's relational rows."""
    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage.store import Store

    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/console.sqlite")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    seed_relational(store)
    yield create_app(settings, store, worker=None, warehouse=warehouse), store
    engine.dispose()


def _ids(html: str) -> list[str]:
    import re

    return re.findall(r'href="/console/customers/([^"#/]+)"', html)


async def test_the_list_searches_by_id_email_name_and_trait_and_filters(console_as) -> None:
    viewer = await console_as("viewer")
    page = await viewer.get("/console/customers")
    assert page.status_code == 200, page.text
    ids = _ids(page.text)
    assert ids[:2] == ["c-alice", "c-bob"] and len(ids) == 25, "the most recently seen first, 25 a page"
    assert 'rel="next"' in page.text and "Alice Liddell" in page.text and "alice@example.com" in page.text
    second = await viewer.get("/console/customers", params={"offset": 25})
    assert len(_ids(second.text)) == 7 and 'rel="prev"' in second.text and 'rel="next"' not in second.text
    for params, expected in [
        ({"q": "c-alice"}, ["c-alice"]),
        ({"q": "BOB@example"}, ["c-bob"]),
        ({"q": "liddell"}, ["c-alice"]),
        ({"trait": "plan=free"}, ["c-bob"]),
        ({"stage": "active"}, ["c-alice"]),
        ({"rfm": "champions"}, ["c-alice"]),
        ({"tier": "gold"}, ["c-alice"]),
        ({"segment": "vip"}, ["c-alice"]),
        ({"q": "gen1", "stage": "new"}, ["c-gen-01", *[f"c-gen-{i}" for i in range(10, 20)]]),
        ({"q": "nobody-matches"}, []),
    ]:
        answer = await viewer.get("/console/customers", params=params)
        assert answer.status_code == 200, (params, answer.text)
        assert sorted(_ids(answer.text)) == sorted(expected), params
    assert "anon-1" not in page.text, "a profile merged into another is not listed"
    fragment = await viewer.get("/console/customers", params={"q": "alice"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and _ids(fragment.text) == ["c-alice"]


async def test_a_bad_filter_is_named_inline(console_as) -> None:
    viewer = await console_as("viewer")
    answer = await viewer.get("/console/customers", params={"stage": "sleepy", "trait": "no-equals-sign"})
    assert answer.status_code == 422
    assert 'id="e-stage"' in answer.text and "Lifecycle stage: Input should be" in answer.text
    assert 'id="e-trait"' in answer.text and "Trait: String should match" in answer.text
    assert 'value="no-equals-sign"' in answer.text, "what was typed is kept"


async def test_the_list_says_when_clickhouse_is_away(console_app, console_as) -> None:
    app, _ = console_app
    app.state.warehouse = None
    page = await (await console_as("viewer")).get("/console/customers")
    assert page.status_code == 200 and "ClickHouse is not available" in page.text


async def test_the_360_shows_identity_scores_segments_timeline_messages_loyalty(console_as) -> None:
    viewer = await console_as("viewer")
    page = await viewer.get("/console/customers/c-alice")
    assert page.status_code == 200, page.text
    text = page.text
    assert "Alice Liddell" in text and "anon-1" in text and "identify with both ids" in text, "ids and merges"
    assert "last order 0.2 days before" in text and "champions" in text, "each score with how it was computed"
    assert "idle 0.1 days / typical 3.5 days" in text
    assert "VIPs" in text, "segments with since"
    assert "Entered segment VIPs" in text and "orders ≥ 10" in text, "segment change with its reason"
    assert "Rule winback did nothing (conditions_not_met)" in text and "lifecycle_stage is active" in text
    assert "Order Completed" in text and "Product Viewed" in text, "events, those of a stitched id too"
    assert "Welcome, Alice" in text and ">opened</span>" in text, "the email and its fate"
    assert "Hello Alice, welcome aboard (signed up)." in text and "&lt;b&gt;Alice&lt;/b&gt;" in text, "its copy"
    assert "<script>" not in text and " style=" not in text
    for action in ("/notes", "/cases", "/consent", "/export", "/erase"):
        assert f'c-alice{action}"' not in text, f"a viewer is not offered {action}"
    missing = await viewer.get("/console/customers/nobody")
    assert missing.status_code == 404


async def test_without_clickhouse_the_360_still_shows_the_relational_half(console_app, console_as) -> None:
    app, _ = console_app
    app.state.warehouse = None
    page = await (await console_as("viewer")).get("/console/customers/c-alice")
    assert page.status_code == 200
    assert "Welcome, Alice" in page.text and "Rule winback did nothing" in page.text
    assert "clickhouse_unavailable" in page.text and "ClickHouse is not available" in page.text


async def test_an_agent_opens_a_case_and_adds_a_note_with_inline_errors(console_app, console_as) -> None:
    _, store = console_app
    agent = await console_as("agent")
    page = await agent.get("/console/customers/c-alice")
    assert 'action="/console/customers/c-alice/cases"' in page.text and "/consent" not in page.text
    assert "open one below to write the first note" in page.text
    no_case = await agent.post("/console/customers/c-alice/notes", data={"csrf_token": agent.csrf, "text": "x"})
    assert no_case.status_code == 422 and "choose one of the customer" in no_case.text
    bad = await agent.post(
        "/console/customers/c-alice/cases",
        data={"csrf_token": agent.csrf, "subject": "", "priority": "normal", "sla_hours": "-2"},
    )
    assert bad.status_code == 422
    assert 'id="e-subject"' in bad.text and "Subject: " in bad.text and "Answer within (hours): " in bad.text
    assert 'value="-2"' in bad.text, "what was typed is kept"
    assert store.read(cases.cases, "c-alice") == [], "nothing saved"
    done = await agent.post(
        "/console/customers/c-alice/cases",
        data={"csrf_token": agent.csrf, "subject": "Parcel lost", "priority": "high", "sla_hours": "8"},
    )
    assert (done.status_code, done.headers["location"]) == (303, "/console/customers/c-alice#cases")
    [case] = store.read(cases.cases, "c-alice")
    empty = await agent.post(
        "/console/customers/c-alice/notes", data={"csrf_token": agent.csrf, "case_id": case.id, "text": ""}
    )
    assert empty.status_code == 422 and 'id="e-text"' in empty.text and "Note: " in empty.text
    noted = await agent.post(
        "/console/customers/c-alice/notes",
        data={"csrf_token": agent.csrf, "case_id": case.id, "text": "Called: parcel resent"},
    )
    assert noted.status_code == 303
    page = await agent.get("/console/customers/c-alice")
    assert "Parcel lost" in page.text and "Called: parcel resent" in page.text
    unknown = await agent.post(
        "/console/customers/c-alice/notes", data={"csrf_token": agent.csrf, "case_id": "nope", "text": "x"}
    )
    assert unknown.status_code == 422 and 'id="e-case_id"' in unknown.text


async def test_a_marketer_changes_consent_and_a_bad_value_is_named(console_app, console_as) -> None:
    _, store = console_app
    marketer = await console_as("marketer")
    bad = await marketer.post(
        "/console/customers/c-alice/consent",
        data={"csrf_token": marketer.csrf, "channel": "email", "granted": "perhaps", "purpose": "marketing"},
    )
    assert bad.status_code == 422 and 'id="e-granted"' in bad.text and "Consent: " in bad.text
    wrong_channel = await marketer.post(
        "/console/customers/c-alice/consent", data={"csrf_token": marketer.csrf, "channel": "fax", "granted": "true"}
    )
    assert wrong_channel.status_code == 422 and 'id="e-channel"' in wrong_channel.text
    assert not [e for e in store.read(audit.recent, 100) if e.action == "consent"], "nothing saved"
    done = await marketer.post(
        "/console/customers/c-alice/consent",
        data={"csrf_token": marketer.csrf, "channel": "email", "granted": "false", "purpose": "marketing"},
    )
    assert (done.status_code, done.headers["location"]) == (303, "/console/customers/c-alice#contact")
    page = await marketer.get("/console/customers/c-alice")
    assert "withdrawn" in page.text and "api:" + marketer.email in page.text
    agent = await console_as("agent")
    refused = await agent.post(
        "/console/customers/c-alice/consent", data={"csrf_token": agent.csrf, "channel": "email", "granted": "true"}
    )
    assert refused.status_code == 403
    api_refused = await agent.put(
        "/v1/customers/c-alice/consent/email", json={"granted": True}, headers={"X-CSRF-Token": agent.csrf}
    )
    assert api_refused.status_code == 403


async def test_an_admin_lifts_a_suppression_with_a_reason_audited(console_app, console_as) -> None:
    from datetime import UTC, datetime

    _, store = console_app
    digest = address_digest("alice@example.com")

    def suppress(session) -> None:
        session.add(
            AddressSuppression(
                address_digest=digest, reason="bounce", source="smtp 550", suppressed_at=datetime.now(UTC)
            )
        )

    store.write(suppress)
    marketer = await console_as("marketer")
    assert "Lift the suppression" not in (await marketer.get("/console/customers/c-alice")).text
    refused = await marketer.post(
        "/console/customers/c-alice/suppression/lift",
        data={"csrf_token": marketer.csrf, "address_digest": digest, "reason": "fixed"},
    )
    assert refused.status_code == 403
    admin = await console_as("admin")
    page = await admin.get("/console/customers/c-alice")
    assert "suppressed: bounce" in page.text and "Lift the suppression" in page.text
    short = await admin.post(
        "/console/customers/c-alice/suppression/lift",
        data={"csrf_token": admin.csrf, "address_digest": digest, "reason": "x"},
    )
    assert short.status_code == 422 and 'id="e-reason"' in short.text and "Why it may be mailed again: " in short.text
    lifted = await admin.post(
        "/console/customers/c-alice/suppression/lift",
        data={"csrf_token": admin.csrf, "address_digest": digest, "reason": "the mailbox works again"},
    )
    assert lifted.status_code == 303
    assert [e for e in store.read(audit.recent, 100) if e.action == "lift" and e.actor == admin.email]
    assert "Lift the suppression" not in (await admin.get("/console/customers/c-alice")).text


async def test_erasing_needs_the_admin_and_the_typed_id(console_as) -> None:
    admin = await console_as("admin")
    page = await admin.get("/console/customers/c-alice")
    assert (
        'href="/console/customers/c-alice/export"' in page.text
        and 'href="/console/customers/c-alice/erase"' in page.text
    )
    confirm = await admin.get("/console/customers/c-alice/erase")
    assert confirm.status_code == 200 and "data-confirm=" in confirm.text
    wrong = await admin.post("/console/customers/c-alice/erase", data={"csrf_token": admin.csrf, "confirm": "c-bob"})
    assert wrong.status_code == 422 and 'id="e-confirm"' in wrong.text and 'value="c-bob"' in wrong.text
    assert (await admin.get("/console/customers/c-alice")).status_code == 200, "nothing erased"
    # This app has no privacy service (it needs Kafka too): the API answers 503, said on the page.
    unavailable = await admin.post(
        "/console/customers/c-alice/erase", data={"csrf_token": admin.csrf, "confirm": "c-alice"}
    )
    assert unavailable.status_code == 503 and "privacy requests need ClickHouse" in unavailable.text
    export = await admin.get("/console/customers/c-alice/export")
    assert export.status_code == 503
    agent = await console_as("agent")
    for method, path in (("GET", "/erase"), ("POST", "/erase"), ("GET", "/export")):
        form = {"csrf_token": agent.csrf, "confirm": "c-alice"} if method == "POST" else None
        answer = await agent.request(method, f"/console/customers/c-alice{path}", data=form)
        assert answer.status_code == 403, path


async def test_the_360_shows_the_email_id_that_links_the_fate(console_as) -> None:
    viewer = await console_as("viewer")
    answer = await viewer.get("/v1/customers/c-alice/messages")
    [message] = answer.json()["messages"]
    assert message["id"] == EMAIL_ID and set(message["fate"]) == {"delivered", "opened"}


@pytest.mark.kafka
async def test_an_admin_downloads_the_export_then_erases_the_customer(
    tmp_path, clickhouse_server, kafka_broker
) -> None:
    """With the privacy service (ClickHouse and Kafka): the export is a JSON download, the
    erasure (after typing the id) leaves nothing and comes back to the list saying so."""
    import httpx

    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.privacy.requests import PrivacyRequests
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage import users
    from ecrm_interaction.storage.store import Store
    from ecrm_schemas.kafka_admin import ensure_topics
    from ecrm_schemas.kafka_producer import ReliableProducer
    from ecrm_schemas.suppressions import SuppressionList

    client = clickhouse_server.client(tz_mode="aware")
    database = "console_customers_erase"
    client.command(f"DROP DATABASE IF EXISTS {database}")
    seed_clickhouse(client, database)
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/e.sqlite",
                                   kafka_bootstrap_servers=kafka_broker.bootstrap)  # fmt: skip
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    seed_relational(store)
    ensure_topics(settings.kafka_client_config())
    privacy = PrivacyRequests(client, database, store, ReliableProducer(settings.kafka_client_config()),
                              SuppressionList(), settle_s=0.0)  # fmt: skip
    app = create_app(
        settings, store, worker=None, privacy=privacy, warehouse=Warehouse(clickhouse_server.service_client(), database)
    )
    store.write(users.add_user, "root@example.com", "Root", "admin", "a long enough password", "test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as admin:
        signed = await admin.post("/console/sign-in", data={"email": "root@example.com",
                                                            "password": "a long enough password"})  # fmt: skip
        assert signed.status_code == 303
        csrf = (await admin.get("/v1/me")).json()["csrf_token"]
        export = await admin.get("/console/customers/c-alice/export")
        assert export.status_code == 200, export.text
        assert export.headers["content-disposition"] == 'attachment; filename="customer-c-alice.json"'
        assert export.json()["customer_id"] == "c-alice"
        erased = await admin.post("/console/customers/c-alice/erase", data={"csrf_token": csrf, "confirm": "c-alice"})
        assert (erased.status_code, erased.headers["location"]) == (303, "/console/customers?erased=c-alice")
        listed = await admin.get(erased.headers["location"])
        assert "The customer c-alice was erased." in listed.text and "c-alice</a>" not in listed.text
        assert (await admin.get("/console/customers/c-alice")).status_code == 404
    engine.dispose()
