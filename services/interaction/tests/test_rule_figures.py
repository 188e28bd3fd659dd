"""``GET /v1/rules/figures`` on a real ClickHouse (chdb) and SQLite: each rule's human opens and
clicks counted once per message, and orders attributed to the rule of the customer's last click
within 7 days, with their revenue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from interaction_factories import rule

from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store, make_engine, migrate

pytestmark = pytest.mark.clickhouse
ADMIN = {"Authorization": "Bearer t0ken"}
T = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
COLUMNS = ["message_id", "customer_id", "user_id", "anonymous_id", "type", "event", "timestamp", "received_at",
           "properties", "traits", "context", "source_partition", "source_offset"]  # fmt: skip


def _event(customer: str, name: str, at: datetime, **properties) -> list:
    return [str(uuid.uuid4()), customer, customer, "", "track", name, at, at, orjson.dumps(properties).decode(),
            "{}", "{}", 0, 0]  # fmt: skip


EVENTS = [
    _event("u1", "Email Opened", T, email_id="e1", rule_id="greet", machine_open=False),
    _event("u1", "Email Opened", T + timedelta(minutes=1), email_id="e1", rule_id="greet", machine_open=False),
    _event("u2", "Email Opened", T, email_id="e2", rule_id="greet", machine_open=True),  # a prefetch: no person
    _event("u1", "Email Link Clicked", T + timedelta(minutes=2), email_id="e1", rule_id="greet"),
    _event("u1", "Order Completed", T + timedelta(hours=1), order_id="o1", total=80, revenue=50.5),
    _event("u1", "Order Completed", T + timedelta(days=8), order_id="o2", total=30),  # the click is too old
    _event("u3", "Email Link Clicked", T, email_id="e3", rule_id="greet"),
    _event("u3", "Email Link Clicked", T + timedelta(hours=2), email_id="e4", rule_id="winback"),
    _event("u3", "Order Completed", T + timedelta(hours=3), order_id="o3", total=20),  # the last click: winback
    _event("u9", "Order Completed", T, order_id="o9", total=999),  # never clicked
    _event("u4", "Email Link Clicked", T - timedelta(days=60), email_id="e5", rule_id="greet"),  # before the period
]


@pytest.fixture
async def http(tmp_path, clickhouse_server, clickhouse_database):
    client = clickhouse_server.client()
    migrate_clickhouse(client, clickhouse_database)
    client.insert(f"{clickhouse_database}.events", EVENTS, column_names=COLUMNS)
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="t0ken")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    store.write(rule_store.upsert_rules, [TemplateSpec(id="t", subject="Hi", text="x")],
                [rule(id="greet"), rule(id="winback"), rule(id="quiet")])  # fmt: skip
    app = create_app(
        settings, store, worker=None, warehouse=Warehouse(clickhouse_server.service_client(), clickhouse_database)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://interaction") as http:
        yield http
    engine.dispose()


async def test_opens_clicks_and_last_click_conversions_are_counted_per_rule(http) -> None:
    answer = await http.get("/v1/rules/figures", params={"days": 30}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["engagement"] == "clickhouse"
    figures = {r["rule_id"]: r for r in answer.json()["rules"]}
    engaged = {k: {n: figures[k][n] for n in ("opened", "clicked", "converted", "revenue")} for k in figures}
    assert engaged == {
        "greet": {"opened": 1, "clicked": 2, "converted": 1, "revenue": 50.5},
        "winback": {"opened": 0, "clicked": 1, "converted": 1, "revenue": 20.0},
        "quiet": {"opened": 0, "clicked": 0, "converted": 0, "revenue": 0},
    }
    assert (await http.get("/v1/rules/figures", params={"days": 0}, headers=ADMIN)).status_code == 422
