"""Property-based run of the marketer API's OpenAPI (schemathesis): no generated request gets a 5xx.

Requests are generated from the documented parameters and bodies, valid and invalid, as an
admin (who may call everything), against the real app with SQLite, the real ClickHouse engine
(customer export and erasure) and the real broker (suppressions, segment definitions). Every
refusal must be a 4xx in the API's JSON error shape.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.delivery.recommendations import Recommendations
from ecrm_interaction.privacy.requests import PrivacyRequests
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.kafka_admin import ensure_topics
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.suppressions import SuppressionList

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.fuzz]
ADMIN = {"Authorization": "Bearer fuzz-admin-token"}
# About 300 requests in `make test`; `make test-reliability` sets ECRM_FUZZ_EXAMPLES=400 (about 4k here).
EXAMPLES_PER_ROUTE = max(1, int(os.environ.get("ECRM_FUZZ_EXAMPLES", "25")) // 5)


@pytest.fixture(scope="module")
def api_app(tmp_path_factory, kafka_broker, clickhouse_server):
    database = "fuzz_api"
    directory = tmp_path_factory.mktemp("fuzz")
    settings_ = InteractionSettings(
        database_url=f"sqlite:///{directory}/i.db",
        collector_sources_file=directory / "sources.json",
        interaction_api_token="fuzz-admin-token",
        kafka_bootstrap_servers=kafka_broker.bootstrap,
    )
    engine = make_engine(settings_.database_url)
    migrate(engine)
    store = Store(engine)
    client = clickhouse_server.client(tz_mode="aware")
    migrate_clickhouse(client, database)
    ensure_topics(settings_.kafka_client_config())
    producer = ReliableProducer(settings_.kafka_client_config())
    privacy = PrivacyRequests(client, database, store, producer, SuppressionList(), settle_s=0.0)
    dispatcher = Dispatcher(settings_, store, producer)  # its producer publishes segment definitions
    shop = Recommendations(client, database)
    app = create_app(settings_, store, worker=None, dispatcher=dispatcher, recommender=shop.for_customer,
                     recent_events=shop.recent_events, privacy=privacy,
                     warehouse=Warehouse(clickhouse_server.service_client(), database))  # fmt: skip
    # Built before fuzzing, as a deployment waits for /readyz: until then it answers 503 by design.
    app.state.assistant.prepare(store)
    yield app
    engine.dispose()


@pytest.fixture(scope="module")
def api_schema(api_app):
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


def _errors_are_json(response) -> None:
    if 400 <= response.status_code < 500 and response.status_code != 405:
        body = response.json()
        assert isinstance(body, dict) and set(body.get("error", ())) >= {"code", "message", "errors"}, (
            response.request.method,
            response.request.url,
            dict(response.request.headers),
            response.request.body,
            response.status_code,
            body,
        )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_generated_request_gets_a_server_error(api_schema, mode) -> None:
    calls: list[int] = []
    exercised: set[str] = set()
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def run(case) -> None:
            response = case.call(headers=ADMIN)
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])
            _errors_are_json(response)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label
        else:
            exercised.add(f"{operation.method.upper()} {operation.path}")
    print(f"\n{mode.value}: {len(calls)} requests, statuses {sorted(set(calls))}")
    must = {"POST /v1/rules", "PUT /v1/segments/{segment_id}", "PUT /v1/loyalty/program", "POST /v1/cases"}
    if mode is GenerationMode.POSITIVE:
        must |= {"DELETE /v1/customers/{customer_id}", "GET /v1/customers/{customer_id}/export"}
    assert must <= exercised, must - exercised
    assert len(calls) >= 10 * EXAMPLES_PER_ROUTE, f"too few requests were generated: {len(calls)}"
    if mode is GenerationMode.POSITIVE:
        assert sum(200 <= c < 300 for c in calls) > len(calls) // 5, "valid requests should often succeed"
