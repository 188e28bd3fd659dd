"""The API routes behind the Customers pages, against a real ClickHouse: the customer list
(search, filters, pages), a customer's ids and merges, their timeline and their messages with
copy and fate; and what they answer without ClickHouse."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from customer_seed import EMAIL_ID, GENERATED, seed_clickhouse, seed_relational

from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.services import score_explanations
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.store import Store, make_engine, migrate

pytestmark = pytest.mark.clickhouse
ADMIN = {"Authorization": "Bearer directory-admin"}


@pytest.fixture(scope="module")
def warehouse(clickhouse_server):
    client = clickhouse_server.client(tz_mode="aware")
    client.command("DROP DATABASE IF EXISTS customer_directory")
    seed_clickhouse(client, "customer_directory")
    return Warehouse(clickhouse_server.service_client(), "customer_directory")


@pytest.fixture
async def http(tmp_path, warehouse):
    settings = InteractionSettings(
        database_url=f"sqlite:///{tmp_path}/d.sqlite", interaction_api_token="directory-admin"
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    seed_relational(store)
    app = create_app(settings, store, worker=None, warehouse=warehouse)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        client.app = app
        yield client
    engine.dispose()


async def test_the_list_pages_and_filters_in_clickhouse(http) -> None:
    first = (await http.get("/v1/customers", params={"limit": 20}, headers=ADMIN)).json()
    assert [c["customer_id"] for c in first["customers"][:2]] == ["c-alice", "c-bob"]
    assert first["next_offset"] == 20 and len(first["customers"]) == 20
    last = (await http.get("/v1/customers", params={"limit": 20, "offset": 20}, headers=ADMIN)).json()
    assert len(last["customers"]) == GENERATED + 2 - 20 and last["next_offset"] is None
    [alice] = (await http.get("/v1/customers", params={"q": "LIDDELL"}, headers=ADMIN)).json()["customers"]
    assert alice | {"name": alice["name"]} == alice and alice["name"] == "Alice Liddell"
    assert (alice["lifecycle_stage"], alice["rfm_segment"], alice["loyalty_tier"], alice["revenue"]) == (
        "active", "champions", "gold", 2400.5)  # fmt: skip
    found = {
        key: [c["customer_id"] for c in (await http.get("/v1/customers", params={key: value}, headers=ADMIN)).json()
              ["customers"]]
        for key, value in {"q": "c-bo", "trait": "plan=pro", "segment": "vip", "stage": "prospect",
                           "rfm": "champions", "tier": "gold"}.items()
    }  # fmt: skip
    assert found == {"q": ["c-bob"], "trait": ["c-alice"], "segment": ["c-alice"], "stage": ["c-bob"],
                     "rfm": ["c-alice"], "tier": ["c-alice"]}  # fmt: skip
    refused = await http.get("/v1/customers", params={"limit": 1000, "stage": "x"}, headers=ADMIN)
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["error"]["errors"]} == {"limit", "stage"}


async def test_a_customers_ids_merges_and_timeline(http) -> None:
    identity = (await http.get("/v1/customers/c-alice/identity", headers=ADMIN)).json()
    assert [(link["anonymous_id"], link["state"]) for link in identity["links"]] == [("anon-1", "merged")]
    assert identity["merges"][0]["reason"] == "identify with both ids"
    timeline = (await http.get("/v1/customers/c-alice/timeline", headers=ADMIN)).json()
    assert timeline["warehouse"] is None
    kinds = [(item["kind"], item["title"]) for item in timeline["items"]]
    assert ("segment", "Entered segment VIPs") in kinds and ("event", "Product Viewed") in kinds, kinds
    assert ("decision", "Rule welcome planned email: sent") in kinds
    ats = [item["at"] for item in timeline["items"]]
    assert ats == sorted(ats, reverse=True), "newest first"
    skip = next(item for item in timeline["items"] if item["ref"] == "skip-1")
    assert skip["reason"] == "lifecycle_stage is active, not churned (2 times)"
    assert len((await http.get("/v1/customers/c-alice/timeline", params={"limit": 2}, headers=ADMIN)).json()
               ["items"]) == 2  # fmt: skip


async def test_every_message_with_its_copy_and_fate(http) -> None:
    [message] = (await http.get("/v1/customers/c-alice/messages", headers=ADMIN)).json()["messages"]
    assert (message["id"], message["outcome"], message["subject"]) == (EMAIL_ID, "opened", "Welcome, Alice")
    assert set(message["fate"]) == {"delivered", "opened"}
    assert message["rendered"]["text"] == "Hello Alice, welcome aboard (signed up)."
    assert message["rendered"]["html"] == "<p>Hello <b>Alice</b></p>"
    none = (await http.get("/v1/customers/c-bob/messages", headers=ADMIN)).json()
    assert none["messages"] == [], "c-bob's bounce names another message"


async def test_without_clickhouse_the_list_is_503_and_the_rest_answers_its_relational_half(http) -> None:
    http.app.state.warehouse = None
    listed = await http.get("/v1/customers", headers=ADMIN)
    assert (listed.status_code, listed.json()["error"]["code"]) == (503, "clickhouse_unavailable")
    timeline = (await http.get("/v1/customers/c-alice/timeline", headers=ADMIN)).json()
    assert timeline["warehouse"] == "clickhouse_unavailable" and {i["kind"] for i in timeline["items"]} == {"decision"}
    [message] = (await http.get("/v1/customers/c-alice/messages", headers=ADMIN)).json()["messages"]
    assert message["fate"] == {} and message["rendered"]["text"].startswith("Hello Alice")


async def test_the_360_explains_each_score(http) -> None:
    view = (await http.get("/v1/customers/c-alice", headers=ADMIN)).json()
    explained = {s["name"]: s for s in view["score_explanations"]}
    assert set(explained) == set(score_explanations.DEFINITIONS)
    assert explained["rfm_recency"]["value"] == 5 and explained["rfm_recency"]["inputs"] == "last order 0.2 days before"
    assert explained["rfm_monetary"]["inputs"] == "net revenue 2,400.50"
    assert (
        explained["lifecycle_stage"]["value"] == "active" and "churn risk low" in explained["lifecycle_stage"]["inputs"]
    )
    assert explained["nps_category"]["inputs"] == "no answer yet"


def test_the_explained_thresholds_are_the_aggregators() -> None:
    """The numbers the 360 quotes next to each score are those the aggregator computes with."""
    from ecrm_aggregator.computed_traits import DEFAULT_POLICY, RFM_SEGMENTS

    ours = score_explanations
    quoted = {
        "recency_days": ours.RECENCY_DAYS, "frequency_orders": ours.FREQUENCY_ORDERS,
        "monetary": tuple(Decimal(m) for m in ours.MONETARY),
        "engagement_half_life_days": ours.ENGAGEMENT_HALF_LIFE_DAYS, "engagement_scale": ours.ENGAGEMENT_SCALE,
        "churn_medium_ratio": ours.CHURN_MEDIUM_RATIO, "churn_high_ratio": ours.CHURN_HIGH_RATIO,
        "default_interval_days": ours.DEFAULT_INTERVAL_DAYS, "churned_after_days": ours.CHURNED_AFTER_DAYS,
        "new_customer_days": ours.NEW_CUSTOMER_DAYS,
    }  # fmt: skip
    computed_with = {name: getattr(DEFAULT_POLICY, name) for name in quoted}
    assert quoted == computed_with
    names = [name for name, _, _ in RFM_SEGMENTS]
    assert list(ours.RFM_SEGMENT_NAMES) == names
