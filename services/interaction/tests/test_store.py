"""The relational store on SQLite and on a real PostgreSQL started by the fixtures."""

import pytest
from sqlalchemy import inspect

from ecrm_interaction.rule_matching import RuleSpec, TemplateSpec
from ecrm_interaction.store import Store, make_engine, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path}/db/interaction.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    migrate(engine)
    yield Store(engine)
    engine.dispose()


def test_migrations_create_the_tables_and_are_idempotent(store) -> None:
    migrate(store.engine)
    tables = set(inspect(store.engine).get_table_names())
    assert {"rules", "email_templates", "sends", "alembic_version"} <= tables


def test_rules_are_upserted_by_id(store) -> None:
    template = TemplateSpec(id="t", subject="s", text="x")
    rule = RuleSpec(id="r", name="first", trigger_event="identify", template_id="t")
    store.upsert_rules([template], [rule])
    store.upsert_rules([template], [rule.model_copy(update={"name": "renamed", "enabled": False})])
    [saved] = store.all_rules()
    assert (saved.name, saved.enabled) == ("renamed", False)
    assert store.enabled_rules() == ([], {"t": template})


def test_a_send_is_claimed_once(store) -> None:
    claim = dict(dedup_key="r:u1", rule_id="r", customer_id="u1", trigger_message_id="m1")
    first = store.claim_send(**claim)
    assert first is not None and first.status == "pending"
    again = store.claim_send(**claim)
    assert again is not None and again.id == first.id  # still pending: may be retried
    store.finish_send(first.id, status="sent", recipient="ada@example.com", subject="Hi")
    assert store.claim_send(**claim) is None
    [send] = store.sends(customer_id="u1")
    assert (send.status, send.subject) == ("sent", "Hi") and send.sent_at is not None
