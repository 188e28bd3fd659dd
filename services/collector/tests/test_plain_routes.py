"""The ingest routes skip FastAPI's request handling, and keep everything around it."""

import httpx
from prometheus_client import REGISTRY

from ecrm_collector.app import create_app
from ecrm_collector.gateway import Gateway
from ecrm_collector.plain_routes import PlainRoutes
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.routes import segment
from ecrm_collector.settings import CollectorSettings
from ecrm_schemas.events import EVENT_TYPES

SETTINGS = CollectorSettings(kafka_bootstrap_servers="127.0.0.1:1", collector_write_keys="plain-key")


def test_every_segment_ingest_path_is_served_plain() -> None:
    producer = AsyncProducer(SETTINGS.kafka_client_config())
    try:
        routes = PlainRoutes(app=None, routers=[segment.router(Gateway.build(SETTINGS, producer))]).routes  # type: ignore[arg-type]
    finally:
        producer.close(0)
    singles = {f"/v1/{t}" for t in EVENT_TYPES} | {f"/v1/{t[0]}" for t in EVENT_TYPES}
    assert set(routes) == singles | {"/v1/batch", "/v1/b", "/beacon/v1/batch"}


def _requests(route: str, status: str) -> float:
    return REGISTRY.get_sample_value("ecrm_collector_requests_total", {"route": route, "status": status}) or 0.0


async def test_a_plain_route_keeps_cors_counting_and_json_errors() -> None:
    producer = AsyncProducer(SETTINGS.kafka_client_config())
    transport = httpx.ASGITransport(app=create_app(SETTINGS, producer))
    before = _requests("/v1/track", "401")
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        refused = await http.post("/v1/track", headers={"Authorization": "Bearer nope", "Origin": "https://shop.example"},
                                  json={"userId": "u", "event": "E"})  # fmt: skip
        preflight = await http.options("/v1/track", headers={"Origin": "https://shop.example",
                                                               "Access-Control-Request-Method": "POST"})  # fmt: skip
        wrong_method = await http.get("/v1/track")  # not POST: FastAPI answers, as before
    producer.close(0)
    assert refused.status_code == 401
    assert refused.json()["error"]["errors"][0] == {"field": "Authorization", "rule": "unknown_key",
                                                    "message": "unknown or revoked write key"}  # fmt: skip
    assert refused.headers["access-control-allow-origin"] == "*"
    assert refused.headers["access-control-expose-headers"] == "Retry-After"
    assert _requests("/v1/track", "401") == before + 1  # counted under its route, not "unmatched"
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-methods"] == "POST"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
