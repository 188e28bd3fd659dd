"""A marketer edits a template: a typo in the Jinja syntax is refused when it is saved, with
the reason, so that no send fails later; a template that no rule uses can be deleted."""

from __future__ import annotations

import pytest
from scenarios.users import InteractionApi

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]


def test_a_marketer_saves_a_template_with_a_typo(api: InteractionApi) -> None:
    broken = {"id": "scenario-typo", "subject": "Hello {{ traits.firstName }", "text": "Hi {% if x %}no end"}
    saved = api.put("/v1/templates/scenario-typo", broken)
    assert saved.status_code == 422, saved.text
    assert "scenario-typo" not in {t["id"] for t in api.get("/v1/templates").json()}


def test_a_marketer_deletes_a_template_no_rule_uses(api: InteractionApi) -> None:
    unused = {"id": "scenario-unused", "subject": "Spring sale", "text": "Everything 20 % off."}
    assert api.put("/v1/templates/scenario-unused", unused).status_code == 200
    assert api.delete("/v1/templates/scenario-unused").status_code == 204
    assert "scenario-unused" not in {t["id"] for t in api.get("/v1/templates").json()}
    assert api.delete("/v1/templates/scenario-cart-reminder").status_code == 409  # a rule uses it
