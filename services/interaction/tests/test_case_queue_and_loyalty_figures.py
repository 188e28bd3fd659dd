"""The API reads the console's case queue and loyalty page need (issue 18): the case queue's
order and filters, the case summary, members per tier and rewards issued, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from ecrm_interaction.api.app import create_app
from ecrm_interaction.engine.rules import LoyaltyProgram, TierSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import loyalty
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import Case, Customer, LoyaltyBalance

ADMIN = {"Authorization": "Bearer t0ken"}


@pytest.fixture
async def http(relational_store):
    settings = InteractionSettings(
        database_url="sqlite://", interaction_api_token="t0ken", interaction_escalation_email="desk@shop.example.com"
    )
    app = create_app(settings, relational_store, worker=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://interaction") as client:
        client.store = relational_store
        yield client


async def _open(http, customer_id: str, subject: str, priority: str, sla_hours: float, **extra) -> str:
    body = {"customer_id": customer_id, "subject": subject, "priority": priority, "sla_hours": sla_hours, **extra}
    answer = await http.post("/v1/cases", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _overdue(store, case_id: str, hours: float) -> None:
    def change(session) -> None:
        due = datetime.now(UTC) - timedelta(hours=hours)
        session.execute(update(Case).where(Case.id == case_id).values(sla_due_at=due))

    store.write(change)


async def test_the_queue_puts_overdue_cases_first_then_priority_then_the_sla(http) -> None:
    low_soon = await _open(http, "u1", "low soon", "low", 1)
    urgent_late = await _open(http, "u2", "urgent later", "urgent", 48)
    urgent_soon = await _open(http, "u3", "urgent soon", "urgent", 2)
    normal_overdue = await _open(http, "u4", "normal overdue", "normal", 24)
    high_overdue = await _open(http, "u5", "high overdue", "high", 24, assignee="sam@shop.example.com")
    resolved = await _open(http, "u6", "done", "urgent", 1)
    _overdue(http.store, normal_overdue, 5)
    _overdue(http.store, high_overdue, 1)
    _overdue(http.store, resolved, 3)
    assert (await http.patch(f"/v1/cases/{resolved}", json={"status": "resolved"}, headers=ADMIN)).status_code == 200

    queue = (await http.get("/v1/cases", params={"order": "queue", "status": "open,pending"}, headers=ADMIN)).json()
    assert [c["id"] for c in queue] == [high_overdue, normal_overdue, urgent_soon, urgent_late, low_soon]
    everything = (await http.get("/v1/cases", params={"order": "queue"}, headers=ADMIN)).json()
    assert [c["id"] for c in everything] == [*[c["id"] for c in queue], resolved], "the resolved ones last"
    newest = (await http.get("/v1/cases", headers=ADMIN)).json()
    assert newest[0]["id"] == resolved, "newest first"

    page2 = await http.get(
        "/v1/cases", params={"order": "queue", "status": "open", "limit": 2, "offset": 2}, headers=ADMIN
    )
    assert [c["id"] for c in page2.json()] == [urgent_soon, urgent_late]
    mine = await http.get("/v1/cases", params={"assignee": "sam@shop.example.com"}, headers=ADMIN)
    assert [c["id"] for c in mine.json()] == [high_overdue]
    unassigned = await http.get("/v1/cases", params={"unassigned": "true", "status": "open"}, headers=ADMIN)
    assert high_overdue not in [c["id"] for c in unassigned.json()] and len(unassigned.json()) == 4
    urgent = await http.get("/v1/cases", params={"priority": "urgent", "order": "queue"}, headers=ADMIN)
    assert [c["id"] for c in urgent.json()] == [urgent_soon, urgent_late, resolved]


async def test_a_queue_filter_that_is_not_a_status_or_priority_is_refused_naming_it(http) -> None:
    wrong = await http.get("/v1/cases", params={"status": "open,closed"}, headers=ADMIN)
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["error"]["errors"]] == ["status"]
    assert "'closed' is not a status" in wrong.json()["error"]["errors"][0]["message"]
    wrong = await http.get("/v1/cases", params={"priority": "asap"}, headers=ADMIN)
    assert (wrong.status_code, wrong.json()["error"]["errors"][0]["field"]) == (422, "priority")


async def test_the_case_summary_counts_unresolved_cases_and_names_who_hears_of_escalations(http) -> None:
    late = await _open(http, "u1", "late", "high", 24)
    await _open(http, "u2", "fresh", "normal", 24, assignee="sam@shop.example.com")
    pending = await _open(http, "u3", "waiting", "low", 24)
    await http.patch(f"/v1/cases/{pending}", json={"status": "pending"}, headers=ADMIN)
    done = await _open(http, "u4", "done", "low", 24)
    await http.patch(f"/v1/cases/{done}", json={"status": "resolved"}, headers=ADMIN)
    _overdue(http.store, late, 2)

    summary = (await http.get("/v1/cases/summary", headers=ADMIN)).json()
    assert summary == {"open": 2, "pending": 1, "overdue": 1, "escalated": 0, "unassigned": 2,
                       "escalation_email": "desk@shop.example.com"}  # fmt: skip


async def test_members_per_tier_are_counted_from_the_ledger_balances(http) -> None:
    store = http.store
    program = LoyaltyProgram(tiers=[TierSpec(name="bronze", min_points=0), TierSpec(name="silver", min_points=100),
                                    TierSpec(name="gold", min_points=1000)])  # fmt: skip
    store.write(rule_store.set_loyalty_program, program, "test")
    now = datetime.now(UTC)

    def seed(session) -> None:
        for customer_id in ("a", "b", "c", "d", "e"):
            session.add(Customer(customer_id=customer_id))
        for n, (customer_id, points) in enumerate(
            [("a", 50), ("b", 60), ("b", 40), ("c", 999), ("c", 1), ("d", 5000), ("x", 150), ("y", 10)]
        ):
            loyalty.add_points(session, customer_id, points, "test", f"k{n}", None, now)

    store.write(seed)
    tiers = (await http.get("/v1/loyalty/tiers", headers=ADMIN)).json()
    # a: 50 bronze, b: 100 silver, c: 1000 gold, d: gold, e: no entries (bronze), x: silver, y: bronze
    assert tiers == [
        {"tier": "bronze", "min_points": 0, "members": 3},
        {"tier": "silver", "min_points": 100, "members": 2},
        {"tier": "gold", "min_points": 1000, "members": 2},
    ]


async def test_rewards_issued_are_counted_per_reward_with_the_latest_ones(http) -> None:
    store = http.store
    t0 = datetime(2026, 12, 1, 9, tzinfo=UTC)

    def seed(session) -> None:
        for n, (customer_id, reward, cost) in enumerate(
            [("a", "welcome-voucher", 0), ("b", "welcome-voucher", 0), ("c", "gold-gift", 500), ("a", "gold-gift", 500),
             ("d", "welcome-voucher", 0)]
        ):  # fmt: skip
            loyalty.issue_reward(
                session, customer_id, reward, f"CODE{n}", cost, f"r{n}", "rule-1", t0 + timedelta(hours=n)
            )

    store.write(seed)
    issued = (await http.get("/v1/loyalty/rewards", params={"limit": 2}, headers=ADMIN)).json()
    assert [(r["reward"], r["issued"], r["points"]) for r in issued["rewards"]] == [
        ("welcome-voucher", 3, 0), ("gold-gift", 2, 1000)]  # fmt: skip
    assert datetime.fromisoformat(issued["rewards"][0]["last_issued_at"]) == t0 + timedelta(hours=4)
    assert [(r["customer_id"], r["reward"]) for r in issued["recent"]] == [("d", "welcome-voucher"), ("a", "gold-gift")]
    assert "CODE" not in str(issued), "reward codes are the customers' and stay out of the overview"
    assert (await http.get("/v1/loyalty/rewards", params={"limit": 0}, headers=ADMIN)).status_code == 422


def test_the_kept_balances_are_the_sums_of_the_ledger_entries(relational_store) -> None:
    store = relational_store
    now = datetime.now(UTC)

    def entry(n: int, customer_id: str, points: int, key: str | None = None) -> loyalty.LedgerEntry:
        return loyalty.LedgerEntry(f"e{n}", customer_id, points, "test", None, key or f"key{n}", now)

    store.write(loyalty.add_entries, [entry(1, "a", 10), entry(2, "a", 5), entry(3, "b", 7)])
    store.write(loyalty.add_entries, [entry(4, "a", 99, key="key1"), entry(5, "b", 3)])  # key1 is used: left out
    store.write(loyalty.add_points, "b", -100, "spent", "spend-1", None, now)  # takes at most what is there
    store.write(loyalty.add_points, "c", 4, "gift", "gift-1", None, now)
    store.write(loyalty.add_points, "c", 4, "gift", "gift-1", None, now)  # the same key: nothing

    def kept(session) -> dict[str, int]:
        return {row.customer_id: row.points for row in session.scalars(select(LoyaltyBalance))}

    assert store.read(kept) == {"a": 15, "b": 0, "c": 4}
    assert store.read(loyalty.balances, ["a", "b", "c"]) == store.read(kept), "the ledger says the same"
