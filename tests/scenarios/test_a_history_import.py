"""A history import: the shop moves to eCRM with a year of orders. The operator loads the past
(sign-up, five orders, two NPS answers) through the backfill path with the server key, in the
batch shape analytics-python sends. The profile is built from it, and nobody is mailed and no
case is opened for things that happened weeks ago.

The backfill path (issue 16 #11): ``POST /v1/import``, server keys only, body ``{"batch": [...]}``
as for ``/v1/batch``, events with their past ``timestamp``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scenarios.users import AnalyticsPython, InteractionApi, Mailbox, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

HAL, HAL_EMAIL = "hist-hal", "hal.history@example.com"


def test_a_history_import(shop: Shop, api: InteractionApi, mailbox: Mailbox, data_team: Any) -> None:
    now = datetime.now(UTC)
    history = AnalyticsPython(shop)
    history.identify(HAL, {"email": HAL_EMAIL, "firstName": "Hal"}, timestamp=now - timedelta(days=120))
    for n, days_ago in enumerate((90, 75, 60, 45, 35)):
        history.track(HAL, "Order Completed", {"order_id": f"hist-o{n}", "total": 40, "currency": "EUR"},
                      timestamp=now - timedelta(days=days_ago))  # fmt: skip
    history.track(HAL, "NPS Answered", {"survey_id": "nps", "score": 4, "comment": "slow"},
                  timestamp=now - timedelta(days=30))  # fmt: skip
    history.track(HAL, "NPS Answered", {"survey_id": "nps", "score": 9, "comment": "much better"},
                  timestamp=now - timedelta(days=10))  # fmt: skip
    imported = history.flush("/v1/import")
    assert imported.status_code == 200, imported.text
    assert imported.json().get("accepted") == 8, imported.text

    profile = eventually(lambda: (p := data_team.profile(HAL)) is not None and p["orders"] == 5 and p)
    assert profile, data_team.profile(HAL)
    assert (float(profile["revenue"]), profile["nps_latest"], profile["email"]) == (200.0, 9, HAL_EMAIL)
    time.sleep(3)  # what a live rule would have done by now
    acted = ("pending", "waiting", "deferred", "sent", "done", "failed")  # skipped or suppressed is fine
    assert [d for d in api.decisions(HAL) if d["status"] in acted] == []
    assert mailbox.messages_to(HAL_EMAIL) == []
    assert api.get("/v1/cases", customer_id=HAL).json() == []

    # The rules are live for what happens from now on: today's order gets its thank-you.
    live = AnalyticsPython(shop)
    live.track(HAL, "Order Completed", {"order_id": "hist-live", "total": 25, "currency": "EUR"})
    assert live.flush().status_code == 200
    assert api.decision(HAL, "thanks-for-order")["status"] == "sent"
    assert len(mailbox.messages_to(HAL_EMAIL)) == 1


def test_the_same_history_in_any_order_gives_the_same_profile(shop: Shop, data_team: Any) -> None:
    """Two customers with the same ten orders, one back end sending them newest first, the other
    oldest first (through ``/v1/batch``; they have no address, so nobody is mailed)."""
    now = datetime.now(UTC)
    days_ago = [30 + 2 * n for n in range(10)]  # every other day, a month ago
    for customer, order in (("hist-nora", days_ago), ("hist-olaf", list(reversed(days_ago)))):
        client = AnalyticsPython(shop)
        for days in order:
            order_properties = {"order_id": f"{customer}-{days}", "total": 30, "currency": "EUR"}
            client.track(customer, "Order Completed", order_properties, timestamp=now - timedelta(days=days))
        assert client.flush().status_code == 200

    def profile(customer: str) -> dict[str, Any]:
        found = eventually(lambda: (p := data_team.profile(customer)) is not None and p["orders"] == 10 and p)
        assert found, data_team.profile(customer)
        return found  # type: ignore[no-any-return]

    nora, olaf = profile("hist-nora"), profile("hist-olaf")
    fields = ("churn_risk", "lifecycle_stage", "rfm_segment")
    assert {f: nora[f] for f in fields} == {f: olaf[f] for f in fields}
