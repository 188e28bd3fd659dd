"""``GET /v1/decisions``: every decision with its reason, the skipped ones too, and filters
that filter (issue 16, symptom 14)."""

from datetime import timedelta

import httpx
import pytest
from interaction_factories import T0, change, rule, trigger

from ecrm_interaction.api.app import create_app
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.engine.rules import LoyaltyProgram, TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.actions import DecisionFilter, Skip, record_skips
from ecrm_interaction.storage.store import Store, make_engine, migrate

ADMIN = {"Authorization": "Bearer t0ken"}
NOW = T0 + timedelta(minutes=5)


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/i.db")
    migrate(engine)
    store = Store(engine)
    store.write(
        rule_store.upsert_rules,
        [TemplateSpec(id="t", subject="Hi", text="x")],
        [
            rule(id="welcome"),
            rule(id="vip-only", conditions={"kind": "trait", "trait": "orders", "op": "gte", "value": 5}),
            rule(id="daily", trigger={"kind": "event", "event": "Product Viewed"}, cooldown="1d"),
        ],
    )
    return store


@pytest.fixture
async def http(store, tmp_path):
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="t0ken")
    transport = httpx.ASGITransport(app=create_app(settings, store, worker=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://interaction") as client:
        yield client


def _take(store: Store, *changes) -> Intake:
    outcome = Intake()
    rules, _ = store.read(rule_store.enabled_rules)
    with store.sessions.begin() as session:
        for c in changes:
            IntakeStep(store, "s").profile_change(session, c, rules, LoyaltyProgram(), NOW, outcome)
    return outcome


async def test_skipped_firings_are_decisions_once_per_rule_customer_and_reason(http, store) -> None:
    _take(store, change(trigger(message_id="i1"), customer="ada"))
    _take(store, change(trigger("track", "Product Viewed", message_id="v1"), customer="ada"))
    _take(store, change(trigger("track", "Product Viewed", message_id="v2"), customer="ada"))  # cooldown
    _take(store, change(trigger("track", "Product Viewed", message_id="v2"), customer="ada"))  # redelivered
    _take(store, change(trigger("track", "Product Viewed", message_id="v3"), customer="ada"))  # cooldown again
    skipped = (await http.get("/v1/decisions", params={"status": "skipped"}, headers=ADMIN)).json()
    assert sorted((d["rule_id"], d["reason"], d["count"], d["kind"]) for d in skipped) == [
        ("daily", "cooldown", 2, None),
        ("vip-only", "conditions_not_met", 1, None),
    ]
    [vip] = [d for d in skipped if d["rule_id"] == "vip-only"]
    assert (vip["detail"], vip["cause"], vip["customer_id"]) == ("conditions not met: orders ≥ 5", "m:i1", "ada")


async def test_the_decision_filters_filter_and_unknown_ones_are_refused(http, store) -> None:
    _take(store, change(trigger(message_id="i1"), customer="ada"), change(trigger(message_id="i2"), customer="bob"))
    every = (await http.get("/v1/decisions", headers=ADMIN)).json()
    assert {(d["rule_id"], d["customer_id"]) for d in every} == {
        ("welcome", "ada"), ("welcome", "bob"), ("vip-only", "ada"), ("vip-only", "bob")
    }  # fmt: skip
    by_rule = (await http.get("/v1/decisions", params={"rule_id": "welcome"}, headers=ADMIN)).json()
    assert {(d["rule_id"], d["status"]) for d in by_rule} == {("welcome", "pending")} and len(by_rule) == 2
    mine = await http.get("/v1/decisions", params={"customer_id": "bob", "rule_id": "vip-only"}, headers=ADMIN)
    assert [(d["customer_id"], d["status"], d["reason"]) for d in mine.json()] == [
        ("bob", "skipped", "conditions_not_met")
    ]
    by_reason = (await http.get("/v1/decisions", params={"reason": "conditions"}, headers=ADMIN)).json()
    assert {d["customer_id"] for d in by_reason} == {"ada", "bob"}
    emails = (await http.get("/v1/decisions", params={"kind": "email"}, headers=ADMIN)).json()
    assert {d["status"] for d in emails} == {"pending"}
    refused = await http.get("/v1/decisions", params={"rule": "welcome"}, headers=ADMIN)
    assert refused.status_code == 422
    assert refused.json()["error"]["errors"][0]["field"] == "rule"
    assert (await http.get("/v1/decisions", params={"limit": 0}, headers=ADMIN)).status_code == 422


async def test_an_event_older_than_the_rules_max_event_age_fires_nothing_and_says_so(http, store) -> None:
    old = trigger("track", "Product Viewed", message_id="v-old", at=NOW - timedelta(days=3))
    assert _take(store, change(old, customer="ada")).planned == 0
    [skip] = (await http.get("/v1/decisions", params={"rule_id": "daily"}, headers=ADMIN)).json()
    assert (skip["status"], skip["reason"]) == ("skipped", "max_event_age")
    assert skip["detail"] == "the event is 3d old; max_event_age is 1d"


def test_a_skip_counts_each_new_cause_once_on_either_database(relational_store) -> None:
    store = relational_store
    with store.sessions.begin() as session:
        for cause in ("m:a", "m:a", "m:b"):
            record_skips(session, [Skip("daily", "ada", "cooldown", "cooldown", cause, NOW)])
        record_skips(session, [Skip("daily", "ada", "conditions_not_met", "conditions not met: x", "m:c", NOW)])
    skips = store.read(action_store.decisions, DecisionFilter(rule_id="daily", reason="cooldown"))
    assert [(s.reason, s.count, s.cause) for s in skips] == [("cooldown", 2, "m:b")]
    assert {s.reason for s in store.read(action_store.decisions, DecisionFilter(customer_id="ada"))} == {
        "cooldown",
        "conditions_not_met",
    }
