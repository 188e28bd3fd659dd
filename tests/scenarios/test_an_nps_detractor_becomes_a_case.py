"""An NPS detractor becoming a case: Nina answers the post-purchase questionnaire (an HTML form
posted from the shop's page) with a 3 and a comment. The shipped detractor rule opens a
high-priority case with a 24 h SLA; a support agent (a token with the agent role: assumed
interface for issue 16 #20, ``POST /v1/tokens {"role": "agent"}``) reads the comment in the
case, adds a note and resolves it. ``Case Opened`` and ``Case Resolved`` are in her events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from scenarios.users import CHROME_UA, SHOP_ORIGIN, AnalyticsPython, InteractionApi, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

NINA = "nps-nina"
COMMENT = "The parcel came a week late and nobody answered my emails"


@pytest.fixture(scope="module")
def detractor_case(shop: Shop, api: InteractionApi) -> dict[str, Any]:
    backend = AnalyticsPython(shop)
    backend.identify(NINA, {"email": "nina.nps@example.com", "firstName": "Nina"})
    assert backend.flush().status_code == 200
    form = {"writeKey": shop.browser_key, "userId": NINA, "nps_recommend": "3", "text_recommend": COMMENT,
            "q_delivery": "late"}  # fmt: skip
    answered = httpx.post(f"{shop.collector}/v1/surveys/post-purchase/responses", data=form,
                          headers={"Origin": SHOP_ORIGIN, "User-Agent": CHROME_UA, "Accept": "text/html"})  # fmt: skip
    assert answered.status_code in (200, 303), answered.text
    cases = eventually(lambda: api.get("/v1/cases", customer_id=NINA).json())
    assert len(cases) == 1, cases
    return cases[0]  # type: ignore[no-any-return]


def test_an_nps_detractor_becomes_a_case(detractor_case: dict[str, Any], api: InteractionApi) -> None:
    case = detractor_case
    assert (case["subject"], case["priority"], case["status"], case["rule_id"]) == (
        "NPS 3 from nina.nps@example.com", "high", "open", "detractor-case")  # fmt: skip
    assert [c["id"] for c in api.customer(NINA)["cases"]] == [case["id"]]

    noted = api.post(f"/v1/cases/{case['id']}/notes", {"text": "Called her; refund for the shipping."})
    assert noted.status_code == 201, noted.text
    resolved = api.patch(f"/v1/cases/{case['id']}", {"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    after = api.get(f"/v1/cases/{case['id']}").json()
    assert after["status"] == "resolved" and after["resolved_at"]
    assert "Called her; refund for the shipping." in [n["text"] for n in after["notes"]]


def test_a_support_agent_resolves_the_case_with_a_note(
    detractor_case: dict[str, Any], shop: Shop, api: InteractionApi, data_team: Any
) -> None:
    created = api.post("/v1/tokens", {"name": "agent-sam", "role": "agent"})
    assert created.status_code == 201, created.text
    agent = InteractionApi(shop, created.json()["token"])
    case_id = detractor_case["id"]
    assert COMMENT in str(agent.get(f"/v1/cases/{case_id}").json()), "the answer's comment is in the case"

    assert agent.post(f"/v1/cases/{case_id}/notes", {"text": "Refunded the shipping."}).status_code == 201
    assert agent.patch(f"/v1/cases/{case_id}", {"status": "resolved"}).status_code == 200
    rule = agent.get("/v1/rules/detractor-case").json()
    assert agent.put("/v1/rules/detractor-case", rule).status_code == 403  # an agent cannot change rules

    listed = agent.get("/v1/cases", customer_id=NINA).json()
    assert "Refunded the shipping." in [n["text"] for n in listed[0]["notes"]]
    assert "Refunded the shipping." in [n["text"] for n in api.customer(NINA)["cases"][0]["notes"]]
    events = eventually(lambda: {"Case Opened", "Case Resolved"} <= {e["event"] for e in data_team.events(NINA)})
    assert events, sorted({e["event"] for e in data_team.events(NINA)})


def test_the_case_sla_is_a_moment_in_time(detractor_case: dict[str, Any]) -> None:
    due = datetime.fromisoformat(detractor_case["sla_due_at"])
    assert due.tzinfo is not None, detractor_case["sla_due_at"]
    created = datetime.fromisoformat(detractor_case["created_at"])
    assert created.tzinfo is not None and (due - created).total_seconds() == pytest.approx(24 * 3600, abs=5)
