"""A rule disabled while actions wait: a trial check-in rule waits 4 s before it mails. The
marketer switches one such rule off (or deletes it) while a customer's message waits; when the
wait ends, nothing goes out from it, while the rule that stayed on mails as planned."""

from __future__ import annotations

from typing import Any

import pytest
from scenarios.users import AnalyticsPython, InteractionApi, Mailbox, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]


@pytest.mark.parametrize("switch_off", ["disable", "delete"])
def test_a_rule_disabled_while_actions_wait(switch_off: str, shop: Shop, api: InteractionApi, mailbox: Mailbox) -> None:
    customer, address, rule_id = f"wait-{switch_off}", f"{switch_off}.wait@example.com", f"scenario-trial-{switch_off}"
    rule = {"id": rule_id, "name": f"Trial check-in switched off ({switch_off})", "category": "transactional",
            "trigger": {"kind": "event", "event": "Trial Started", "where": {"cohort": switch_off}},
            "wait": {"duration": "4s"},
            "actions": [{"kind": "email", "template": "scenario-trial-stopped"}]}  # fmt: skip
    assert api.post("/v1/rules", rule).status_code == 201

    backend = AnalyticsPython(shop)
    backend.identify(customer, {"email": address, "firstName": "Dora"})
    backend.track(customer, "Trial Started", {"plan": "pro", "cohort": switch_off})
    assert backend.flush().status_code == 200

    def waiting() -> list[dict[str, Any]]:
        return [d for d in api.decisions(customer) if d["rule_id"] in (rule_id, "scenario-trial-kept")]

    both = eventually(lambda: len(waiting()) == 2 and waiting(), timeout_s=10)
    assert both and {d["status"] for d in both} == {"waiting"}, waiting()
    if switch_off == "disable":
        assert api.post(f"/v1/rules/{rule_id}/disable").status_code == 200
        # Switched on again before the wait ends: what was cancelled stays cancelled.
        assert api.post(f"/v1/rules/{rule_id}/enable").status_code == 200
    else:
        assert api.delete(f"/v1/rules/{rule_id}").status_code == 204

    mailbox.wait_for(address, "How is your trial going?", timeout_s=20)  # the rule that stayed on
    stopped = eventually(
        lambda: [d for d in api.decisions(customer) if d["rule_id"] == rule_id and d["status"] != "waiting"], 5
    )
    assert [(d["status"], d["reason"]) for d in stopped] == [("cancelled", f"rule_{switch_off}d")], stopped
    assert not [m for m in mailbox.messages_to(address) if "switched off" in m.subject]
