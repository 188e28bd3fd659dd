"""Property-based run of the collector's OpenAPI (schemathesis): no generated request gets a 5xx.

Requests are generated from the documented bodies, valid and invalid, with and without a
write key, against the real app and the real broker. Every refusal must be a 4xx in the
collector's JSON error shape.
"""

import base64
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings

pytestmark = [pytest.mark.kafka, pytest.mark.fuzz]
KEY = "fuzz-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
# About 450 requests in `make test`; `make test-reliability` sets ECRM_FUZZ_EXAMPLES=400 (about 10k here).
EXAMPLES_PER_ROUTE = int(os.environ.get("ECRM_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def collector_app(kafka_broker):
    settings_ = CollectorSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        collector_write_keys=KEY,
        collector_rate_limit_per_s=1_000_000,
        collector_produce_timeout_s=5.0,
    )
    producer = AsyncProducer({**settings_.kafka_client_config(), "linger.ms": 1})
    yield create_app(settings_, producer)
    producer.close()


@pytest.fixture(scope="module")
def collector_schema(collector_app):
    return schemathesis.openapi.from_asgi("/openapi.json", collector_app)


def _errors_are_json(response) -> None:
    if 400 <= response.status_code < 600:
        body = response.json()
        assert set(body["error"]) >= {"code", "message", "errors"}, body
        assert body["error"]["errors"], f"no field and rule named: {body}"
        assert all(error["field"] and error["rule"] for error in body["error"]["errors"]), body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_generated_request_gets_a_server_error(collector_schema, mode) -> None:
    # schemathesis' pytest integration does not run under pytest 9, so each operation's
    # strategy is driven with hypothesis directly.
    calls: list[int] = []
    exercised: set[str] = set()
    for result in collector_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case) -> None:
            response = case.call(headers=AUTH)
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])
            _errors_are_json(response)

        try:
            run()
        except Unsatisfiable:
            # Some operations have no invalid input (/livez; a path parameter that is any string).
            assert mode is GenerationMode.NEGATIVE and not operation.body, operation.label
        else:
            exercised.add(operation.path)
    print(f"\n{mode.value}: {len(calls)} requests, statuses {sorted(set(calls))}")
    assert {"/v1/track", "/v1/batch", "/v1/surveys/{survey_id}/responses"} <= exercised
    assert len(calls) >= 10 * EXAMPLES_PER_ROUTE // 2, f"too few requests were generated: {len(calls)}"
    if mode is GenerationMode.POSITIVE:
        assert calls.count(200) > len(calls) // 4, "valid requests should mostly be accepted"


def test_the_run_really_reaches_the_routes(collector_schema) -> None:
    """Guard against a vacuous run: the schema must expose the ingest routes to the generator."""
    operations = {op.ok().path for op in collector_schema.get_all_operations()}
    assert {"/v1/track", "/v1/batch", "/v1/surveys/{survey_id}/responses", "/v1/e/c/{token}"} <= operations
