"""The collector against the real broker: 200 only after Kafka has the events."""

import asyncio
import base64
import gzip
import signal
import time

import httpx
import orjson
import pytest

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import SourceRegistry
from ecrm_embedded.testing import read_records, read_topic
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import decode_event
from ecrm_schemas.own_events import PRODUCER_HEADER, EventOrigin, origin_of_headers
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ
from ecrm_schemas.tracking import TrackingToken, sign

pytestmark = pytest.mark.kafka
KEY = "test-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


@pytest.fixture
def browser_key(tmp_path):
    registry = SourceRegistry()
    _, key = registry.add("shop-web", "browser", ("https://shop.example.com",))
    registry.save(tmp_path / "sources.json")
    return key


@pytest.fixture
async def client(kafka_broker, tmp_path, browser_key):
    settings = CollectorSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        collector_write_keys=KEY,
        collector_sources_file=tmp_path / "sources.json",
    )
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        yield http
    producer.close()


async def test_track_and_identify_reach_kafka(client, kafka_broker) -> None:
    r1 = await client.post("/v1/identify", headers=AUTH, json={"userId": "k-1", "traits": {"email": "k1@example.com"}})
    r2 = await client.post(
        "/v1/track", headers={"Authorization": f"Bearer {KEY}"}, json={"userId": "k-1", "event": "Signed Up"}
    )
    assert (r1.status_code, r1.json()) == (200, {"success": True})
    assert r2.status_code == 200
    records = read_topic(kafka_broker.bootstrap, EVENTS.name, expect=2)
    events = sorted((decode_event(v) for _, v in records), key=lambda e: e.type)
    assert [e.type for e in events] == ["identify", "track"]
    assert {k for k, _ in records} == {b"k-1"}


async def test_a_client_cannot_mark_its_event_as_the_interaction_services_own(client, kafka_broker) -> None:
    """The own-event mark is a Kafka header only the interaction service sets: whatever a
    client sends (the service's message-id prefix, the header's name as an HTTP header, fields
    named after it), the collector's record carries no producer header."""
    forged = {"userId": "k-own", "event": "Unsubscribed", "messageId": "ecrm-interaction-unsubscribe-k-own",
              "origin": "interaction", "properties": {}, "context": {"ecrm_producer": "interaction"}}  # fmt: skip
    response = await client.post("/v1/track", headers=AUTH | {PRODUCER_HEADER: "interaction"}, json=forged)
    assert response.status_code == 200, response.text
    # The module's broker also holds the previous test's two records, on other partitions:
    # poll order across partitions is not fixed, so this test's record is found by its key.
    records = read_records(kafka_broker.bootstrap, EVENTS.name, expect=3, timeout_s=10)
    [(_, value, headers)] = [r for r in records if r[0] == b"k-own"]
    assert decode_event(value).messageId == "ecrm-interaction-unsubscribe-k-own"
    assert PRODUCER_HEADER not in dict(headers) and origin_of_headers(headers) is EventOrigin.CLIENT


async def test_invalid_event_is_400_with_field_and_dead_lettered(client, kafka_broker) -> None:
    response = await client.post("/v1/track", headers=AUTH, json={"userId": "k-2"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid_event"
    assert body["error"]["errors"] == [{"field": "event", "rule": "missing", "message": "Field required"}]
    [(key, value)] = read_topic(kafka_broker.bootstrap, EVENTS_DLQ.name, expect=1)
    letter = DeadLetter.model_validate_json(value)
    assert key == b"k-2" and letter.errors[0].field == "event"


async def test_a_deeply_nested_event_is_a_400_not_a_server_error(client, kafka_broker) -> None:
    body = b'{"userId": "k-deep", "event": "X", "properties": ' + b'{"a": ' * 600 + b"1" + b"}" * 601
    response = await client.post("/v1/track", headers={**AUTH, "Content-Type": "application/json"}, content=body)
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["rule"] == "too_deep"
    letters = [DeadLetter.model_validate_json(v) for _, v in read_topic(kafka_broker.bootstrap, EVENTS_DLQ.name,
                                                                         expect=50, timeout_s=3)]  # fmt: skip
    assert any(letter.errors[0].rule == "too_deep" for letter in letters)


async def test_batch_accepts_valid_and_reports_rejected_indexes(client, kafka_broker) -> None:
    batch = {
        "batch": [
            {"type": "page", "anonymousId": "anon-3", "name": "Home"},
            {"type": "track", "anonymousId": "anon-3"},
            {"type": "track", "userId": "k-3", "event": "Order Completed", "properties": {"order_id": "o", "total": 5}},
        ],
        "context": {"library": {"name": "test-sdk"}},
    }
    response = await client.post(
        "/v1/batch", headers={**AUTH, "Content-Encoding": "gzip"}, content=gzip.compress(orjson.dumps(batch))
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert [r["index"] for r in response.json()["rejected"]] == [1]
    records = read_topic(kafka_broker.bootstrap, EVENTS.name, expect=10, timeout_s=3)
    libraries = [decode_event(v).context.library for _, v in records]
    assert libraries.count({"name": "test-sdk"}) == 2


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic !!"}])
async def test_unknown_write_key_is_401(client, headers) -> None:
    response = await client.post("/v1/track", headers=headers, json={"userId": "x", "event": "E"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_oversized_body_is_413(client) -> None:
    response = await client.post("/v1/track", headers=AUTH, content=b'{"a":"' + b"x" * 40_000 + b'"}')
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_health_and_metrics(client) -> None:
    assert (await client.get("/livez")).status_code == 200
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.post("/v1/page", headers=AUTH, json={"userId": "k-4"})
    text = (await client.get("/metrics")).text
    assert 'ecrm_collector_requests_total{route="/v1/page",status="200"}' in text
    assert "ecrm_collector_events_accepted_total" in text


async def test_broker_down_answers_503_with_retry_after(kafka_broker) -> None:
    settings = CollectorSettings(
        kafka_bootstrap_servers="127.0.0.1:1", collector_write_keys=KEY, collector_produce_timeout_s=1.0
    )
    producer = AsyncProducer({**settings.kafka_client_config(), "message.timeout.ms": 1000})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        response = await http.post("/v1/track", headers=AUTH, json={"userId": "x", "event": "E"})
        ready = await http.get("/readyz")
    producer.close(timeout_s=0)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert ready.status_code == 503


async def test_unknown_routes_and_methods_answer_in_the_same_json_shape(client) -> None:
    missing = await client.post("/v1/nope", headers=AUTH, json={})
    wrong_method = await client.get("/v1/track", headers=AUTH)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (405, "method_not_allowed")


async def test_browser_key_sends_from_its_origin_but_no_back_end_events(client, browser_key) -> None:
    auth = {"Authorization": f"Bearer {browser_key}"}
    good = await client.post(
        "/v1/page", headers=auth | {"Origin": "https://shop.example.com"}, json={"anonymousId": "a"}
    )
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "*"
    other = await client.post(
        "/v1/page", headers=auth | {"Origin": "https://evil.example.net"}, json={"anonymousId": "a"}
    )
    assert (other.status_code, other.json()["error"]["code"]) == (403, "origin_not_allowed")
    order = {"anonymousId": "a", "event": "Order Completed", "properties": {"order_id": "o", "total": 1}}
    refused = await client.post("/v1/track", headers=auth, json=order)
    assert refused.status_code == 400
    assert refused.json()["error"]["errors"][0]["rule"] == "server_only"
    preflight = await client.options(
        "/v1/track",
        headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )  # fmt: skip
    assert preflight.status_code == 200


async def test_rate_limit_is_per_source(kafka_broker, tmp_path, browser_key) -> None:
    settings = CollectorSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        collector_write_keys=KEY,
        collector_sources_file=tmp_path / "sources.json",
        collector_rate_limit_per_s=0.05,
        collector_rate_limit_burst=3,
    )
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        statuses = [(await http.post("/v1/page", headers=AUTH, json={"userId": "r"})).status_code for _ in range(4)]
        limited = await http.post("/v1/page", headers=AUTH, json={"userId": "r"})
        other = await http.post("/v1/page", headers={"Authorization": f"Bearer {browser_key}"}, json={"userId": "r"})
    producer.close()
    assert statuses == [200, 200, 200, 429]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 15 <= int(limited.headers["Retry-After"]) <= 20  # the next token comes in 20 s
    assert other.status_code == 200


async def test_survey_responses_from_json_and_from_an_html_form(client, browser_key, kafka_broker) -> None:
    body = {"userId": "s-1", "answers": [{"question_id": "fit", "answer": "ok"}, {"question_id": "nps", "score": 9}]}
    ok = await client.post("/v1/surveys/post-purchase/responses", headers=AUTH, json=body)
    assert (ok.status_code, ok.json()) == (200, {"success": True, "accepted": 2})

    form = {"writeKey": browser_key, "anonymousId": "s-2", "nps_nps": "7", "text_nps": "fine"}
    page = await client.post("/v1/surveys/post-purchase/responses", data=form,
                             headers={"Origin": "https://shop.example.com"})  # fmt: skip
    assert page.status_code == 200 and "Thank you" in page.text

    bad = await client.post("/v1/surveys/s/responses", headers=AUTH,
                            json={"userId": "s-3", "answers": [{"question_id": "nps", "score": 11}]})  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["error"]["errors"][0]["field"] == "properties.score"

    events = [decode_event(v) for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=100, timeout_s=3)]
    nps = {
        e.userId or e.anonymousId: e.properties["score"] for e in events if getattr(e, "event", "") == "NPS Answered"
    }
    assert nps["s-1"] == 9 and nps["s-2"] == 7


async def test_open_pixel_and_click_redirect(client, kafka_broker) -> None:
    secret = CollectorSettings().tracking_secret.get_secret_value()
    token = TrackingToken(email_id="s-9", customer="t-1", rule_id="welcome", url="https://shop.example.com/sale",
                          issued_at=time.time() - 60)  # fmt: skip
    ua = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
    pixel = await client.get(f"/v1/e/o/{sign(token, secret)}.gif", headers=ua)
    assert (pixel.status_code, pixel.headers["content-type"], pixel.content[:6]) == (200, "image/gif", b"GIF89a")
    click = await client.get(f"/v1/e/c/{sign(token, secret)}", headers=ua)
    assert (click.status_code, click.headers["location"]) == (302, "https://shop.example.com/sale")
    tampered = await client.get(f"/v1/e/c/{sign(token.model_copy(update={'url': 'https://evil.example'}), 'guess')}")
    assert (tampered.status_code, tampered.json()["error"]["code"]) == (400, "invalid_token")

    events = [decode_event(v) for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=100, timeout_s=3)]
    mine = {e.event: e.properties for e in events if e.userId == "t-1"}
    assert mine["Email Opened"]["machine_open"] is False
    assert mine["Email Link Clicked"]["link_url"] == "https://shop.example.com/sale"


async def test_broker_outage_gives_503_and_the_collector_recovers_by_itself(fresh_kafka_broker) -> None:
    broker = fresh_kafka_broker
    settings = CollectorSettings(
        kafka_bootstrap_servers=broker.bootstrap, collector_write_keys=KEY, collector_produce_timeout_s=2.0
    )
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": 1, "message.timeout.ms": 2000,
                              "reconnect.backoff.max.ms": 500})  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        assert (await http.post("/v1/page", headers=AUTH, json={"userId": "before"})).status_code == 200
        # Freeze the broker: unreachable, but its state kept (tansu's memory storage would lose it on a restart).
        broker.process.send_signal(signal.SIGSTOP)
        down = await http.post("/v1/page", headers=AUTH, json={"userId": "during"})
        assert (down.status_code, down.headers["Retry-After"]) == (503, "5")
        assert (await http.get("/readyz")).status_code == 503
        broker.process.send_signal(signal.SIGCONT)
        statuses = []
        for _ in range(40):
            response = await http.post("/v1/page", headers=AUTH, json={"userId": "after"})
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
            await asyncio.sleep(0.5)
        assert statuses[-1] == 200, statuses
        assert (await http.get("/readyz")).status_code == 200
    producer.close()
    users = [decode_event(v).userId for _, v in read_topic(broker.bootstrap, EVENTS.name, expect=10, timeout_s=3)]
    # Every 200 is on Kafka. A 503 promises nothing either way: the broker may have taken the
    # record before it froze (a client retry then carries the same messageId, deduplicated downstream).
    assert users.count("before") == 1 and users.count("after") == 1 and users.count("during") <= 1


async def test_analytics_js_style_requests_with_the_key_in_a_text_plain_body(client, kafka_broker, browser_key) -> None:
    """analytics.js posts text/plain to one-letter paths with `writeKey` in the body (no preflight)."""
    headers = {"Content-Type": "text/plain", "Origin": "https://shop.example.com"}
    page = {"anonymousId": "ajs-1", "writeKey": browser_key, "properties": {"path": "/"}}
    single = await client.post("/v1/p", headers=headers, content=orjson.dumps(page))
    batch = {"writeKey": browser_key, "batch": [{"type": "track", "anonymousId": "ajs-1", "event": "Viewed"}]}
    batched = await client.post("/v1/b", headers=headers, content=orjson.dumps(batch))
    wrong = await client.post("/v1/t", headers=headers, content=orjson.dumps({"writeKey": "nope", "event": "E"}))
    assert (single.status_code, batched.status_code, batched.json()["accepted"]) == (200, 200, 1)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "unauthorized")
    mine = [v for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=100, timeout_s=3) if b"ajs-1" in v]
    assert sorted(decode_event(v).type for v in mine) == ["page", "track"]
    assert not any(browser_key.encode() in v or b"writeKey" in v for v in mine), "the write key reached Kafka"


async def test_a_survey_response_with_an_invalid_answer_stores_none_of_it(client, kafka_broker) -> None:
    body = {"userId": "s-all", "answers": [{"question_id": "fit", "answer": "ok"}, {"question_id": "n", "score": 99}]}
    response = await client.post("/v1/surveys/all-or-none/responses", headers=AUTH, json=body)
    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["error"]["errors"]] == [(1, "properties.score")]
    stored = [v for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=1000, timeout_s=2) if b"s-all" in v]
    dead = [
        v for _, v in read_topic(kafka_broker.bootstrap, EVENTS_DLQ.name, expect=1000, timeout_s=2) if b"s-all" in v
    ]
    assert stored == [] and len(dead) == 1


async def test_openapi_documents_every_route_and_its_body(client) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    for event_type in ("track", "identify", "page", "screen", "group", "alias"):
        body = paths[f"/v1/{event_type}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        component = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        assert "receivedAt" not in component["properties"] and "messageId" not in component.get("required", [])
    assert "/v1/batch" in paths and "/v1/surveys/{survey_id}/responses" in paths
    assert {"/v1/e/o/{token}.gif", "/v1/e/c/{token}", "/v1/ecrm.js", "/livez", "/readyz", "/metrics"} <= set(paths)
    assert "/v1/t" not in paths  # the analytics.js aliases are not advertised twice
    batch_ref = paths["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert batch_ref.endswith("/BatchBody")
    assert "429" in paths["/v1/batch"]["post"]["responses"]


async def test_the_tracker_script_is_served_with_an_etag(client) -> None:
    script = await client.get("/v1/ecrm.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("application/javascript")
    assert b"analytics" in script.content
    again = await client.get("/v1/ecrm.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304


async def test_a_full_producer_queue_answers_503_not_2xx(kafka_broker) -> None:
    settings = CollectorSettings(kafka_bootstrap_servers=kafka_broker.bootstrap, collector_write_keys=KEY)
    producer = AsyncProducer({**settings.kafka_client_config(), "queue.buffering.max.messages": 2, "linger.ms": 50})
    transport = httpx.ASGITransport(app=create_app(settings, producer))
    batch = {"batch": [{"type": "page", "userId": f"q-{i}"} for i in range(10)]}
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
        response = await http.post("/v1/batch", headers=AUTH, json=batch)
    producer.close()
    assert (response.status_code, response.json()["error"]["code"]) == (503, "broker_unavailable")
    assert response.headers["Retry-After"] == "5"


async def test_rudderstack_beacon_with_the_key_in_the_query_string(client, kafka_broker, browser_key) -> None:
    batch = {"batch": [{"type": "track", "anonymousId": "rs-1", "event": "Page Unloaded"}]}
    headers = {"Content-Type": "text/plain", "Origin": "https://shop.example.com"}
    sent = await client.post(f"/beacon/v1/batch?writeKey={browser_key}", headers=headers, content=orjson.dumps(batch))
    refused = await client.post("/beacon/v1/batch?writeKey=nope", headers=headers, content=orjson.dumps(batch))
    assert (sent.status_code, sent.json()["accepted"]) == (200, 1)
    assert refused.status_code == 401
    mine = [v for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=1000, timeout_s=2) if b"rs-1" in v]
    assert [decode_event(v).event for v in mine] == ["Page Unloaded"]


async def test_a_revoked_source_key_is_refused_within_a_second(client, browser_key, tmp_path) -> None:
    origin = {"Origin": "https://shop.example.com"}
    page = {"anonymousId": "rv-1", "name": "Home"}
    sent = await client.post("/v1/page", headers={**origin, "Authorization": f"Bearer {browser_key}"}, json=page)
    assert sent.status_code == 200
    registry = SourceRegistry.load(tmp_path / "sources.json")
    registry.revoke("shop-web")
    registry.save(tmp_path / "sources.json")
    await asyncio.sleep(1.2)  # the collector looks at the file once a second
    refused = await client.post("/v1/page", headers={**origin, "Authorization": f"Bearer {browser_key}"}, json=page)
    assert refused.status_code == 401
    assert refused.json()["error"] == {
        "code": "unauthorized",
        "message": "unknown or revoked write key",
        "errors": [{"field": "Authorization", "rule": "unknown_key", "message": "unknown or revoked write key"}],
    }


async def test_a_write_key_reads_nothing(client, kafka_broker) -> None:
    """The collector only takes events in: with a valid key, no path gives any back."""
    secret = {"userId": "reader-1", "traits": {"email": "reader-1@example.com"}}
    assert (await client.post("/v1/identify", headers=AUTH, json=secret)).status_code == 200
    ingest = ["/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch",
              "/v1/surveys/s1/responses", "/v1/email/events/sendgrid", "/v1/email/events/mailgun",
              "/v1/email/events/ses"]  # fmt: skip
    guessed = ["/v1/events", "/v1/events/reader-1", "/v1/profiles/reader-1", "/v1/customers/reader-1",
               "/v1/sources", "/v1/dlq", "/v1/export", "/v1/e/c/not-a-token", "/v1/e/o/not-a-token.gif",
               "/docs/../v1/events"]  # fmt: skip
    answers = {path: await client.get(path, headers=AUTH) for path in ingest + guessed}
    assert {path: r.status_code for path, r in answers.items() if path in ingest} == dict.fromkeys(ingest, 405)
    assert all(answers[path].status_code in (400, 404) for path in guessed), {
        p: answers[p].status_code for p in guessed
    }
    everything = b"".join(r.content for r in answers.values())
    for path in ("/v1/ecrm.js", "/livez", "/readyz", "/metrics"):
        everything += (await client.get(path, headers=AUTH)).content
    assert b"reader-1" not in everything
    assert all(r.headers["content-type"].startswith("application/json") for p, r in answers.items() if p in ingest)


CONTACT_STATE_EVENTS_SENT = [
    {"event": "Email Bounced", "properties": {"email_id": "m1", "bounce_type": "hard"}},
    {"event": "Email Marked as Spam", "properties": {"email_id": "m1"}},
    {"event": "Unsubscribed", "properties": {}},
    {"event": "Consent Updated", "properties": {"channel": "email", "granted": False}},
]


@pytest.mark.parametrize("origin", [{"Origin": "https://shop.example.com"}, {}], ids=["from-its-origin", "no-origin"])
async def test_a_browser_key_cannot_block_a_customers_mail(client, kafka_broker, browser_key, origin) -> None:
    """Anyone can read a browser key in a shop's page source: it may not unsubscribe, bounce,
    report as spam or withdraw the consent of any user id."""
    auth = {"Authorization": f"Bearer {browser_key}"} | origin
    victim = f"victim-{len(origin)}"
    for sent in CONTACT_STATE_EVENTS_SENT:
        single = await client.post("/v1/track", headers=auth, json={"userId": victim, **sent})
        assert single.status_code == 400, sent
        [error] = single.json()["error"]["errors"]
        assert (error["field"], error["rule"]) == ("event", "contact_state")
        assert sent["event"] in error["message"] and "server key" in error["message"]
    batch = [{"type": "track", "userId": victim, **sent} for sent in CONTACT_STATE_EVENTS_SENT]
    batch.append({"type": "page", "userId": victim})
    answer = await client.post("/v1/batch", headers=auth, json={"batch": batch})
    body = answer.json()
    assert (answer.status_code, body["accepted"]) == (200, 1)
    assert [(r["index"], r["errors"][0]["rule"]) for r in body["rejected"]] == [(i, "contact_state") for i in range(4)]
    letters = [DeadLetter.model_validate_json(v) for key, v in read_topic(kafka_broker.bootstrap, EVENTS_DLQ.name,
               expect=100, timeout_s=3) if key == victim.encode()]  # fmt: skip
    refused = [letter for letter in letters if letter.errors[0].rule == "contact_state"]
    assert len(refused) == 8 and {letter.sender_kind for letter in refused} == {"browser"}
    stored = [decode_event(v) for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=50, timeout_s=3)]
    assert not [e for e in stored if e.userId == victim and e.type == "track"], "nothing about the victim stored"


async def test_a_server_key_reports_contact_state(client, kafka_broker) -> None:
    answer = await client.post("/v1/track", headers=AUTH, json={"userId": "k-cs", **CONTACT_STATE_EVENTS_SENT[2]})
    assert answer.status_code == 200
