"""Every error answer of the collector names the field and the rule that failed (table-driven).

The app runs on the real broker (for the 2xx paths the table passes through); the 503 row
uses a collector whose broker is unreachable.
"""

import base64
import gzip

import httpx
import pytest

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import SourceRegistry
from ecrm_schemas.tracking import TrackingToken, sign

pytestmark = pytest.mark.kafka
KEY = "errors-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
NO_LINK = sign(TrackingToken(email_id="m1", customer="ada"), "ecrm_dev_tracking_secret")

# (request, status, code, field, rule, something the message must say)
ROWS = [
    (("post", "/v1/track", AUTH, {"json": {"event": "E"}}), 400, "invalid_event", "userId", "required_one_of",
     "anonymousId"),
    (("post", "/v1/track", {}, {"json": {"userId": "u", "event": "E"}}), 401, "unauthorized", "writeKey", "missing",
     "write key"),
    (("post", "/v1/track", {"Authorization": "Bearer nope"}, {"json": {"userId": "u"}}), 401, "unauthorized",
     "Authorization", "unknown_key", "revoked"),
    (("post", "/v1/track", {"Authorization": "Basic !!"}, {"json": {"userId": "u"}}), 401, "unauthorized",
     "Authorization", "malformed", "Basic"),
    (("post", "/v1/track?writeKey=nope", {}, {"json": {"userId": "u"}}), 401, "unauthorized", "writeKey",
     "unknown_key", "revoked"),
    (("post", "/v1/batch", {}, {"json": {"writeKey": "nope", "batch": []}}), 401, "unauthorized", "writeKey",
     "unknown_key", "revoked"),
    (("post", "/v1/track", AUTH, {"content": b'{"a":"' + b"x" * 40_000 + b'"}'}), 413, "too_large", "body",
     "max_bytes", "32768"),
    (("post", "/v1/track", AUTH | JSON, {"content": b'{"userId": "u",, }'}), 400, "json_invalid", "body", "json",
     "column 16"),
    (("post", "/v1/track", AUTH | JSON, {"content": b""}), 400, "json_invalid", "body", "required", "empty"),
    (("post", "/v1/track", AUTH | {"Content-Encoding": "br"}, {"content": b"{}"}), 415, "content_encoding",
     "Content-Encoding", "content_encoding", "gzip"),
    (("post", "/v1/track", AUTH | {"Content-Encoding": "gzip"}, {"content": gzip.compress(b"{}")[:-4]}), 400,
     "gzip", "body", "gzip", "gzip"),
    (("post", "/v1/batch", AUTH, {"json": {"batch": 3}}), 400, "invalid_batch", "batch", "list_type", "batch"),
    (("post", "/v1/nope", AUTH, {"json": {}}), 404, "not_found", "path", "not_found", "no route"),
    (("get", "/v1/track", AUTH, {}), 405, "method_not_allowed", "method", "method_not_allowed", "GET"),
    (("get", "/v1/e/o/forged.gif", {}, {}), 400, "invalid_token", "token", "signature", "altered"),
    (("get", f"/v1/e/c/{NO_LINK}", {}, {}), 400, "invalid_token", "token.url", "missing", "link"),
    (("post", "/v1/email/events/sendgrid", {}, {"content": b"[]"}), 404, "provider_not_enabled", "provider",
     "not_enabled", "COLLECTOR_SENDGRID_VERIFICATION_KEY"),
    (("post", "/v1/surveys/s1/responses", AUTH | {"Content-Type": "multipart/form-data; boundary=x"},
      {"content": b""}), 415, "content_type", "Content-Type", "content_type", "urlencoded"),
    (("post", "/v1/surveys/s1/responses", AUTH, {"json": [1]}), 400, "invalid_response", "$", "dict_type", "object"),
    (("post", "/v1/track", {"Authorization": "Bearer BROWSER", "Origin": "https://evil.example"},
      {"json": {"userId": "u"}}), 403, "origin_not_allowed", "Origin", "origin_not_allowed", "https://evil.example"),
]  # fmt: skip


@pytest.fixture
async def client(kafka_broker, tmp_path):
    registry = SourceRegistry()
    _, browser = registry.add("shop-web", "browser", ("https://shop.example.com",))
    registry.save(tmp_path / "sources.json")
    settings = CollectorSettings(kafka_bootstrap_servers=kafka_broker.bootstrap, collector_write_keys=KEY,
                                 collector_sources_file=tmp_path / "sources.json")  # fmt: skip
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        http.headers["X-Browser-Key"] = browser
        yield http
    producer.close()


def _one_error(response: httpx.Response) -> dict:
    body = response.json()["error"]
    assert body["errors"], f"{response.request.url} answered {response.status_code} with no field and rule: {body}"
    return body


@pytest.mark.parametrize(("request_", "status", "code", "field", "rule", "says"), ROWS,
                         ids=[f"{r[1]}-{r[4]}-{r[3]}" for r in ROWS])  # fmt: skip
async def test_every_error_answer_names_the_field_and_the_rule(client, request_, status, code, field, rule, says):
    method, path, headers, kwargs = request_
    if headers.get("Authorization") == "Bearer BROWSER":
        headers = headers | {"Authorization": f"Bearer {client.headers['X-Browser-Key']}"}
    response = await client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    body = _one_error(response)
    assert body["code"] == code
    [error] = body["errors"]
    assert (error["field"], error["rule"]) == (field, rule), error
    assert says in error["message"], error


async def test_the_rate_limit_answer_names_the_key_and_the_rule(kafka_broker) -> None:
    settings = CollectorSettings(kafka_bootstrap_servers=kafka_broker.bootstrap, collector_write_keys=KEY,
                                 collector_rate_limit_per_s=0.001, collector_rate_limit_burst=1)  # fmt: skip
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        await http.post("/v1/page", headers=AUTH, json={"userId": "u"})
        limited = await http.post("/v1/page", headers=AUTH, json={"userId": "u"})
    producer.close()
    assert limited.status_code == 429
    [error] = _one_error(limited)["errors"]
    assert (error["field"], error["rule"]) == ("writeKey", "rate_limit")


async def test_the_broker_unavailable_answer_names_the_rule() -> None:
    settings = CollectorSettings(kafka_bootstrap_servers="127.0.0.1:1", collector_write_keys=KEY,
                                 collector_produce_timeout_s=0.5)  # fmt: skip
    producer = AsyncProducer({**settings.kafka_client_config(), "message.timeout.ms": 500})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        response = await http.post("/v1/track", headers={"Authorization": "Basic " + base64.b64encode(
            f"{KEY}:".encode()).decode()}, json={"userId": "u", "event": "E"})  # fmt: skip
    producer.close(timeout_s=0)
    assert response.status_code == 503
    [error] = _one_error(response)["errors"]
    assert (error["field"], error["rule"]) == ("$", "broker_unavailable")
