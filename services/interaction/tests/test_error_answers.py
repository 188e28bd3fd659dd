"""Every error answer of the interaction API names the field and the rule (table-driven)."""

import httpx
import pytest

from ecrm_interaction.api.app import create_app
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.store import Store, make_engine, migrate

ADMIN = {"Authorization": "Bearer t0ken"}

# (method, path, headers, body, status, field, rule)
ROWS = [
    ("get", "/v1/rules", {}, None, 401, "Authorization", "missing"),
    ("get", "/v1/rules", {"Authorization": "Bearer nope"}, None, 401, "Authorization", "unknown_token"),
    ("get", "/v1/rules/nope", ADMIN, None, 404, "rule_id", "rule_not_found"),
    ("get", "/v1/customers/nobody", ADMIN, None, 404, "customer_id", "customer_not_found"),
    ("get", "/v1/nothing-here", ADMIN, None, 404, "path", "not_found"),
    ("delete", "/v1/tokens", ADMIN, None, 405, "method", "method_not_allowed"),
    ("post", "/u/forged", {}, None, 400, "token", "invalid_unsubscribe_link"),
    ("post", "/v1/tokens", ADMIN, {"name": "x", "role": "emperor"}, 422, "role", "literal_error"),
]


@pytest.fixture
async def http(tmp_path):
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="t0ken")
    engine = make_engine(settings.database_url)
    migrate(engine)
    transport = httpx.ASGITransport(app=create_app(settings, Store(engine), worker=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://interaction") as client:
        yield client


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "field", "rule"), ROWS,
                         ids=[f"{r[4]}-{r[6]}" for r in ROWS])  # fmt: skip
async def test_every_error_answer_names_the_field_and_the_rule(http, method, path, headers, body, status, field, rule):
    response = await http.request(method, path, headers=headers, json=body)
    assert response.status_code == status, response.text
    errors = response.json()["error"]["errors"]
    assert errors, f"{method.upper()} {path} answered {status} with no field and rule"
    assert (errors[0]["field"], errors[0]["rule"]) == (field, rule), errors
    assert errors[0]["message"]


async def test_a_token_without_the_role_is_told_which_rule(http) -> None:
    created = await http.post("/v1/tokens", json={"name": "v", "role": "viewer"}, headers=ADMIN)
    viewer = {"Authorization": f"Bearer {created.json()['token']}"}
    refused = await http.post("/v1/tokens", json={"name": "w", "role": "viewer"}, headers=viewer)
    assert refused.status_code == 403
    [error] = refused.json()["error"]["errors"]
    assert (error["field"], error["rule"]) == ("Authorization", "role")


async def test_an_invalid_rules_file_names_each_field_and_rule(http) -> None:
    yaml = "rules: [{id: r1, trigger: {kind: event, event: X}, actions: [{kind: email, template: t}]}]"
    broken = await http.post("/v1/rules/import", content=yaml, headers={**ADMIN, "Content-Type": "application/yaml"})
    assert broken.status_code == 422
    body = broken.json()["error"]
    assert body["code"] == "invalid_request"
    assert ("rules.0.name", "missing") in {(e["field"], e["rule"]) for e in body["errors"]}, body["errors"]
