"""The relational store on SQLite and on a real PostgreSQL started by the fixtures."""

from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from interaction_factories import rule
from sqlalchemy import inspect, text

from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.engine.planning import PlannedAction
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import actions as action_rows
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import loyalty as loyalty_store
from ecrm_interaction.storage import outbox
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage import suppressions as suppression_store
from ecrm_interaction.storage import tokens as token_store
from ecrm_interaction.storage.actions import insert_actions, new_action
from ecrm_interaction.storage.cases import CaseChange, CaseOpening
from ecrm_interaction.storage.contacts import contact as contact_of
from ecrm_interaction.storage.customers import CustomerRow, SuppressionRow, write_profiles, write_suppressions
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.actions import ActionStatus

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
TEMPLATE = TemplateSpec(id="t", subject="s", text="x")


def _url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/interaction.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    engine = make_engine(_url(request, tmp_path))
    migrate(engine)
    yield Store(engine)
    engine.dispose()


def test_migrations_create_the_tables_and_are_idempotent(store) -> None:
    migrate(store.engine)
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "rules",
        "email_templates",
        "actions",
        "customers",
        "consents",
        "cases",
        "loyalty_ledger",
        "rewards",
        "api_tokens",
        "audit_log",
        "alembic_version",
    } <= tables
    assert "sends" not in tables


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_upgrade_from_the_first_version_keeps_rules_and_the_sends_that_went_out(backend, request, tmp_path) -> None:
    request.param = backend
    engine = make_engine(_url(request, tmp_path))
    config = Config()
    config.set_main_option("script_location", str(resources.files("ecrm_interaction") / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text("INSERT INTO email_templates VALUES ('t', 's', 'x', NULL, :now)"), {"now": NOW})
        connection.execute(
            text("INSERT INTO rules VALUES ('welcome', 'W', 'identify', 't', :yes, :yes, :now, :now)"),
            {"now": NOW, "yes": True},
        )
        connection.execute(
            text(
                "INSERT INTO sends VALUES ('s1', 'welcome:u1', 'welcome', 'u1', 'm1', 'a@x.io', 'Hi', "
                "'sent', NULL, :now, :now)"
            ),
            {"now": NOW},
        )
    migrate(engine)
    store = Store(engine)
    [upgraded] = store.read(rule_store.all_rules)
    assert (upgraded.trigger.kind, upgraded.once_per_customer, upgraded.actions[0].kind) == ("event", True, "email")
    [action] = store.read(action_store.recent, customer_id="u1")
    assert (action.status, action.dedup_key, action.published) == ("sent", "welcome:u1:0", "sent")
    planned = PlannedAction("welcome:u1:0", "email", "welcome", "u1", "marketing", "m:m2", "pending", NOW, {})
    with store.sessions.begin() as session:
        assert insert_actions(session, [new_action(planned, NOW)]) == 0  # the welcome that went out is not sent again
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_upgrade_moves_the_customers_suppressions_to_their_addresses(backend, request, tmp_path) -> None:
    request.param = backend
    engine = make_engine(_url(request, tmp_path))
    config = Config()
    config.set_main_option("script_location", str(resources.files("ecrm_interaction") / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        for customer, email, reason in (("u1", "Ada@Example.com", "hard_bounce"), ("u2", None, "complaint"),
                                        ("u3", "bo@example.com", None)):  # fmt: skip
            connection.execute(
                text("INSERT INTO customers (customer_id, profile_version, email, suppressed, suppressed_at, "
                     "updated_at) VALUES (:id, 1, :email, :reason, :now, :now)"),
                {"id": customer, "email": email, "reason": reason, "now": NOW},
            )  # fmt: skip
    migrate(engine)
    store = Store(engine)
    moved = store.read(suppression_store.of_address, "ada@example.com")
    assert (moved.reason, moved.source, moved.suppressed_at) == ("hard_bounce", "migration:0004", NOW)
    assert [s.address_digest for s in store.read(suppression_store.listed)] == [moved.address_digest]
    assert store.read(contact_of, "u1").suppressed == "hard_bounce" and store.read(contact_of, "u3").suppressed is None
    engine.dispose()


def test_rules_are_upserted_by_id_enabled_and_audited(store) -> None:
    store.write(rule_store.upsert_rules, [TEMPLATE], [rule(name="first")], "ada")
    store.write(rule_store.upsert_rules, [], [rule(name="renamed", enabled=False)], "bob")
    [saved] = store.read(rule_store.all_rules)
    assert (saved.name, saved.enabled) == ("renamed", False)
    assert store.read(rule_store.enabled_rules) == ([], {"t": TEMPLATE})
    assert (
        store.write(rule_store.set_enabled, "r", True, "ada").enabled
        and store.read(rule_store.enabled_rules)[0][0].id == "r"
    )
    with pytest.raises(ValueError, match="do not exist"):
        store.write(rule_store.upsert_rules, [], [rule(id="x", actions=[{"kind": "email", "template": "missing"}])])
    assert [(e.actor, e.action) for e in store.read(audit_log.recent)][:2] == [("ada", "enable"), ("bob", "upsert")]


def test_actions_are_added_once_and_leased_to_one_dispatcher(store) -> None:
    planned = [
        PlannedAction(f"k{i}", "email", "r", "u1", "marketing", "m:x", "pending", NOW, {"n": i}) for i in range(3)
    ]
    with store.sessions.begin() as session:
        assert insert_actions(session, [new_action(p, NOW) for p in planned]) == 3
        assert insert_actions(session, [new_action(p, NOW) for p in planned]) == 0

    def claim(at: datetime) -> list[Any]:
        with store.sessions.begin() as session:
            return action_rows.claim_due(session, at, 10, timedelta(minutes=2))

    first = claim(NOW)
    assert len(first) == 3 and claim(NOW) == []  # leased
    assert len(claim(NOW + timedelta(minutes=3))) == 3  # the lease ran out
    with store.sessions.begin() as session:
        sent = action_rows.Finished(first[0].id, ActionStatus.SENT, "ok", NOW, 1, first[0].dedup_key)
        action_rows.finish(session, [sent], [])
    assert len(claim(NOW + timedelta(minutes=6))) == 2


def test_ledger_rewards_cases_and_escalation_claims_happen_once(store) -> None:
    with store.sessions.begin() as session:
        assert loyalty_store.add_points(session, "u1", 100, "order", "k1", None, NOW)
        assert not loyalty_store.add_points(session, "u1", 100, "order", "k1", None, NOW)
        assert loyalty_store.issue_reward(session, "u1", "voucher", "CODE-1", 0, "rk", "r", NOW)
        assert not loyalty_store.issue_reward(session, "u1", "voucher", "CODE-1", 0, "rk", "r", NOW)
        opening = CaseOpening(customer_id="u1", subject="NPS 3", priority="high", sla=timedelta(hours=1),
                              rule_id="r", dedup_key="ck")  # fmt: skip
        case_id = case_store.open_case(session, opening, NOW)
        again = CaseOpening(customer_id="u1", subject="again", priority="high", sla=timedelta(hours=1),
                            rule_id="r", dedup_key="ck")  # fmt: skip
        assert case_store.open_case(session, again, NOW) is None
    balance, _, rewards = store.read(loyalty_store.ledger, "u1")
    assert balance == 100 and [r.code for r in rewards] == ["CODE-1"]
    assert store.write(case_store.claim_escalations, NOW + timedelta(minutes=30)) == []
    [due] = store.write(case_store.claim_escalations, NOW + timedelta(hours=2))
    assert due.id == case_id and store.write(case_store.claim_escalations, NOW + timedelta(hours=3)) == []
    store.write(case_store.update_case, case_id, CaseChange(status="resolved"), "ada", NOW)
    assert store.read(case_store.case, case_id)[0].resolved_at is not None


def test_a_case_change_changes_only_the_fields_given_and_null_is_a_value(store) -> None:
    opening = CaseOpening(customer_id="u1", subject="Parcel", priority="normal", sla=timedelta(hours=4), assignee="bo")
    case_id = store.write(case_store.open_case, opening, NOW)
    events = len(store.read(outbox.unpublished_events))
    unchanged = store.write(case_store.update_case, case_id, CaseChange(priority="normal"), "ada", NOW)
    assert (unchanged.priority, unchanged.assignee) == ("normal", "bo")
    assert len(store.read(outbox.unpublished_events)) == events, "a change that changes nothing reports nothing"
    store.write(case_store.update_case, case_id, CaseChange(priority="high"), "ada", NOW)
    case, _ = store.read(case_store.case, case_id)
    assert (case.priority, case.assignee, case.status) == ("high", "bo", "open")  # the others stay
    store.write(case_store.update_case, case_id, CaseChange(assignee=None), "ada", NOW)
    assert store.read(case_store.case, case_id)[0].assignee is None  # unassigned
    [entry, *_] = store.read(audit_log.recent)
    assert (entry.action, entry.entity_id) == ("update", case_id)
    assert store.write(case_store.update_case, "nope", CaseChange(status="resolved"), "ada", NOW) is None


def test_store_write_commits_what_returns_and_rolls_back_what_raises(store) -> None:
    store.write(rule_store.upsert_rules, [TEMPLATE], [rule(id="kept")], "ada")
    with pytest.raises(ValueError, match="do not exist"):
        broken = rule(id="broken", actions=[{"kind": "email", "template": "missing"}])
        store.write(rule_store.upsert_rules, [TemplateSpec(id="t2", subject="s", text="x")], [broken], "ada")
    assert [r.id for r in store.read(rule_store.all_rules)] == ["kept"]
    assert set(store.read(rule_store.templates)) == {"t"}, "the template of the failed write was rolled back"


def test_tokens_are_stored_hashed_and_revocable(store) -> None:
    from ecrm_interaction.storage.tokens import hash_token

    token = store.write(token_store.add_token, "support", "viewer", "admin")
    assert token.startswith("ecrm_v_") and store.read(token_store.token_by_hash, hash_token(token)).role == "viewer"
    assert all(t.token_hash != token for t in store.read(token_store.tokens))
    assert (
        store.write(token_store.revoke_token, "support", "admin")
        and store.read(token_store.token_by_hash, hash_token(token)) is None
    )
    with pytest.raises(ValueError):
        store.write(token_store.add_token, "x", "root", "admin")


def test_consent_unsubscribe_and_suppression(store) -> None:
    with store.sessions.begin() as session:
        write_profiles(session, [CustomerRow("u1", '{"customer_id": "u1"}', 1, "ada@example.com", "Europe/Oslo", None)])
        assert customer_store.mark_unsubscribed(session, "u1", NOW) and not customer_store.mark_unsubscribed(
            session, "u1", NOW
        )
        customer_store.set_consent(session, "u1", "sms", True, "marketing", "form", NOW)
        write_profiles(session, [CustomerRow("u2", '{"customer_id": "u2"}', 1, "gone@example.com", None, None)])
        write_suppressions(
            session,
            [SuppressionRow(address_digest("gone@example.com"), "hard_bounce", "event:Email Bounced:b1", NOW)],
            [],
        )
    contact = store.read(contact_of, "u1")
    assert (contact.email, contact.timezone, contact.unsubscribed, contact.consent) == (
        "ada@example.com",
        "Europe/Oslo",
        True,
        {"sms": True},
    )
    with store.sessions.begin() as session:  # opting in to email later undoes the unsubscribe
        customer_store.set_consent(session, "u1", "email", True, "marketing", "form", NOW + timedelta(days=1))
    assert not store.read(contact_of, "u1").unsubscribed and store.read(contact_of, "u2").suppressed == "hard_bounce"


@pytest.mark.postgres
def test_replicas_migrating_at_once_take_turns(postgres_url) -> None:
    from concurrent.futures import ThreadPoolExecutor

    engines = [make_engine(postgres_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(migrate, engines))  # a race on the empty database raised UniqueViolation
        assert "actions" in inspect(engines[0]).get_table_names()
    finally:
        for engine in engines:
            engine.dispose()
