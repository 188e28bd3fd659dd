"""The customer 360 (``GET /v1/customers/{id}``) with its recent events read from the real
ClickHouse engine: JSON columns come back as JSON objects (issue 16 #19), not as strings."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.decode import PositionedEvent
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.rows import event_row
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_interaction.api.app import create_app
from ecrm_interaction.delivery.recommendations import Recommendations
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.store import Store, make_engine
from ecrm_interaction.storage.store import migrate as migrate_store
from ecrm_schemas.validation import validate_event

pytestmark = pytest.mark.clickhouse
ADMIN = {"Authorization": "Bearer t0ken"}


def _events() -> list[dict]:
    at = datetime.now(UTC) - timedelta(hours=1)
    base = {"userId": "u1", "receivedAt": at.isoformat()}
    return [
        base | {"type": "identify", "messageId": "i1", "timestamp": at.isoformat(), "traits": {"plan": "pro"}},
        base | {"type": "page", "messageId": "p1", "timestamp": (at + timedelta(minutes=1)).isoformat(),
                "name": "Pricing", "category": "Docs", "properties": {"path": "/pricing", "tags": ["a", "b"]}},
        base | {"type": "track", "messageId": "t1", "timestamp": (at + timedelta(minutes=2)).isoformat(),
                "event": "Product Viewed", "properties": {"product_id": "p1", "price": 12.5}},
    ]  # fmt: skip


async def test_recent_events_in_the_customer_view_carry_objects_not_json_text(
    clickhouse_server, clickhouse_database, tmp_path
) -> None:
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    migrate(client, clickhouse_database)
    rows = [event_row(PositionedEvent(validate_event(e), 0, i)) for i, e in enumerate(_events())]
    ClickHouseStore(client, clickhouse_database).insert_events(rows, "view-test")
    ClickHouseStore(client, clickhouse_database).insert_events(rows, "view-test-again")  # not merged yet: twice

    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="t0ken")
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    recent = Recommendations(client, clickhouse_database).recent_events
    app = create_app(settings, Store(engine), worker=None, recent_events=recent)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as http:
        opened = await http.post("/v1/cases", json={"customer_id": "u1", "subject": "Help"}, headers=ADMIN)
        assert opened.status_code == 201
        view = (await http.get("/v1/customers/u1", headers=ADMIN)).json()
        latest = (await http.get("/v1/customers/u1", params={"events": 1}, headers=ADMIN)).json()
        without = (await http.get("/v1/customers/u1", params={"events": 0}, headers=ADMIN)).json()
        refused = await http.get("/v1/customers/u1", params={"events": 201}, headers=ADMIN)
    assert [e["message_id"] for e in latest["recent_events"]] == ["t1"]
    assert "recent_events" not in without and without["cases"] == view["cases"]
    assert refused.status_code == 422 and "events" in refused.text
    track, page, identify = view["recent_events"]
    assert track == {"message_id": "t1", "type": "track", "event": "Product Viewed",
                     "timestamp": track["timestamp"], "properties": {"product_id": "p1", "price": 12.5}}  # fmt: skip
    assert page["properties"] == {"path": "/pricing", "tags": ["a", "b"]}
    assert (page["event"], page["name"], page["category"]) == (None, "Pricing", "Docs")
    assert identify["traits"] == {"plan": "pro"} and identify["properties"] == {}
    datetime.fromisoformat(track["timestamp"])
