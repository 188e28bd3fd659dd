"""The collector's admin route (replaying chosen dead letters) is closed without its token:
absent when none is configured, 401 with a wrong one. The replay itself is tested with the
interaction API that calls it (services/interaction/tests/test_data_api.py)."""

import httpx

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings

BODY = {"entries": [{"partition": 0, "offset": 0}]}


async def _answer(token: str | None, presented: str | None) -> httpx.Response:
    settings = CollectorSettings(kafka_bootstrap_servers="127.0.0.1:1", collector_admin_token=token)
    producer = AsyncProducer(settings.kafka_client_config())
    try:
        transport = httpx.ASGITransport(app=create_app(settings, producer))
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
            headers = {"Authorization": f"Bearer {presented}"} if presented else {}
            return await client.post("/admin/dead-letters/replay", json=BODY, headers=headers)
    finally:
        producer.close(0.1)


async def test_without_a_token_configured_the_admin_route_is_not_there() -> None:
    answer = await _answer(None, "anything")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")


async def test_a_missing_or_wrong_token_is_refused() -> None:
    for presented in (None, "wrong"):
        answer = await _answer("the-admin-token", presented)
        assert answer.status_code == 401
        assert answer.json()["error"]["errors"][0]["field"] == "authorization"
