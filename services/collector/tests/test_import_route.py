"""``POST /v1/import`` against the real broker: history marked as backfill, server keys only,
and no other route lets a caller mark its own events (issue 16, symptom 11)."""

import httpx
import pytest

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import SourceRegistry
from ecrm_embedded.testing import read_topic
from ecrm_schemas.backfill import BACKFILL_CONTEXT_KEY, is_backfill
from ecrm_schemas.events import decode_event
from ecrm_schemas.topics import EVENTS

pytestmark = pytest.mark.kafka
SERVER = {"Authorization": "Bearer server-key"}


@pytest.fixture
async def collector(fresh_kafka_broker, tmp_path):
    registry = SourceRegistry()
    _, browser = registry.add("shop-web", "browser", ("https://shop.example.com",))
    registry.save(tmp_path / "sources.json")
    settings = CollectorSettings(
        kafka_bootstrap_servers=fresh_kafka_broker.bootstrap,
        collector_write_keys="server-key",
        collector_sources_file=tmp_path / "sources.json",
    )
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        yield http, {"Authorization": f"Bearer {browser}", "Origin": "https://shop.example.com"}
    producer.close()


def _order(n: int, **extra) -> dict:
    return {"type": "track", "userId": "ada", "event": "Order Completed", "timestamp": f"2026-10-0{n}T10:00:00Z",
            "properties": {"order_id": f"o-{n}", "total": 130}, **extra}  # fmt: skip


async def test_history_is_imported_with_a_server_key_and_marked_as_backfill(collector, fresh_kafka_broker) -> None:
    http, browser = collector
    batch = {"batch": [_order(n) for n in range(1, 6)] + [{"type": "track", "userId": "ada"}]}
    answer = await http.post("/v1/import", json=batch, headers=SERVER)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], [r["index"] for r in answer.json()["rejected"]]) == (5, [5])
    refused = await http.post("/v1/import", json=batch, headers=browser)
    assert refused.status_code == 403 and refused.json()["error"]["errors"][0]["field"] == "writeKey"
    events = [decode_event(v) for _, v in read_topic(fresh_kafka_broker.bootstrap, EVENTS.name, expect=5)]
    assert len(events) == 5 and all(is_backfill(e) for e in events)
    assert sorted(e.timestamp.day for e in events) == [1, 2, 3, 4, 5]  # their own time


async def test_no_other_route_lets_a_caller_mark_its_events_as_backfill(collector, fresh_kafka_broker) -> None:
    http, _ = collector
    forged = {"context": {BACKFILL_CONTEXT_KEY: True, "locale": "de-DE"}}
    assert (await http.post("/v1/track", json=_order(1, **forged), headers=SERVER)).status_code == 200
    batch = {"batch": [_order(2)], **forged}
    assert (await http.post("/v1/batch", json=batch, headers=SERVER)).status_code == 200
    events = [decode_event(v) for _, v in read_topic(fresh_kafka_broker.bootstrap, EVENTS.name, expect=2)]
    assert len(events) == 2 and not any(is_backfill(e) for e in events)
    assert {e.context.locale for e in events} == {"de-DE"}
