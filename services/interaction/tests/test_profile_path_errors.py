"""A profile path that does not exist is refused where it enters: the rules API, rules files and
the segments API answer 422 naming the field and the rule (``unknown_profile_field``)."""

import httpx
import pytest
from interaction_factories import rule
from pydantic import ValidationError

from ecrm_interaction.api.app import create_app
from ecrm_interaction.engine.rules_file import parse_rules
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.store import Store, make_engine, migrate

ADMIN = {"Authorization": "Bearer t0ken"}


@pytest.fixture
async def http(tmp_path):
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="t0ken")
    engine = make_engine(settings.database_url)
    migrate(engine)
    transport = httpx.ASGITransport(app=create_app(settings, Store(engine), worker=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://interaction") as client:
        yield client


async def test_a_rule_with_an_unknown_trait_is_refused_naming_field_and_rule(http) -> None:
    body = rule(id="typo").model_dump(mode="json")
    body["conditions"] = {"kind": "all", "conditions": [{"kind": "trait", "trait": "computed.churn", "op": "exists"}]}
    refused = await http.post("/v1/rules", json=body, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["error"]["errors"]
    assert (error["field"], error["rule"]) == ("conditions.all.conditions.0.trait.trait", "unknown_profile_field")
    assert "did you mean 'computed.churn_risk'" in error["message"]
    body["conditions"] = None
    body["trigger"] = {"kind": "trait", "trait": "traits.plan", "becomes": "gold"}
    refused = await http.post("/v1/rules", json=body, headers=ADMIN)
    [error] = refused.json()["error"]["errors"]
    assert (error["field"], error["rule"]) == ("trigger.trait.trait", "unreported_profile_field")


async def test_a_segment_with_an_unknown_trait_is_refused_naming_field_and_rule(http) -> None:
    definition = {
        "id": "vip",
        "name": "VIP",
        "condition": {"kind": "trait", "trait": "revenu", "op": "gte", "value": 1},
    }
    refused = await http.put("/v1/segments/vip", json=definition, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["error"]["errors"]
    assert (error["field"], error["rule"]) == ("condition.trait.trait", "unknown_profile_field")
    assert "did you mean 'revenue'" in error["message"]


def test_a_rules_file_with_an_unknown_trait_names_the_rule_and_field() -> None:
    text = """
rules:
  - id: churn
    name: Churn
    trigger: {kind: trait, trait: computed.churn_riks, becomes: high}
    actions: [{kind: points, points: 1}]
"""
    with pytest.raises(ValidationError) as refused:
        parse_rules(text)
    [error] = refused.value.errors()
    assert (error["loc"], error["type"]) == (("rules", 0, "trigger", "trait", "trait"), "unknown_profile_field")
    assert "did you mean 'computed.churn_risk'" in error["msg"]
