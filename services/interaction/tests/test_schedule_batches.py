"""A scheduled rule plans a chunk of its audience as one batch of the intake: the statements it
takes do not grow with the audience; and the batch read of stored facts agrees with the one-customer read."""

from __future__ import annotations

from datetime import UTC, datetime

from interaction_factories import DispatchSetup, change, rule, trigger
from sqlalchemy import event

from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.customers import SegmentRow, write_segments
from ecrm_interaction.storage.facts import facts_of, facts_of_many

NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)
SLOT = datetime(2026, 11, 23, 9, tzinfo=UTC)
NEWS = TemplateSpec(id="t", subject="News", text="News", html="<p>News</p>")


def audience_of(setup: DispatchSetup, size: int, prefix: str) -> list[str]:
    customers = [f"{prefix}{i:03}" for i in range(size)]
    setup.take([change(trigger(message_id=f"m-{c}"), customer=c, email=f"{c}@example.com") for c in customers])
    with setup.store.sessions.begin() as session:
        write_segments(session, [SegmentRow(c, prefix, prefix, NOON) for c in customers], [])
    return customers


def statements_to_fire(setup: DispatchSetup, rule_id: str) -> int:
    spec = setup.store.read(rule_store.rule, rule_id)
    assert spec is not None
    executed: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        executed.append(statement)

    event.listen(setup.store.engine, "before_cursor_execute", count)
    try:
        setup.dispatcher.schedules._fire(spec, SLOT, SLOT)
    finally:
        event.remove(setup.store.engine, "before_cursor_execute", count)
    return len(executed)


def test_a_schedule_plans_its_audience_in_statements_that_do_not_grow_with_it(tmp_path, smtp_sink) -> None:
    setup = DispatchSetup(tmp_path, smtp_sink)
    small = rule(id="small", trigger={"kind": "schedule", "cron": "0 9 * * MON", "segment": "s"})
    large = rule(id="large", trigger={"kind": "schedule", "cron": "0 9 * * MON", "segment": "l"})
    setup.rules(small, large, templates=(NEWS,))
    audience_of(setup, 3, "s")
    customers = audience_of(setup, 60, "l")
    few, many = statements_to_fire(setup, "small"), statements_to_fire(setup, "large")
    assert many == few, f"{few} statements for 3 customers, {many} for 60: planning is per customer again"
    planned = setup.store.read(action_store.recent, kind="email", limit=1000)
    assert sorted(a.customer_id for a in planned if a.rule_id == "large") == customers
    assert statements_to_fire(setup, "large") <= many  # the same slot again (a redelivery): nothing new
    assert len(setup.store.read(action_store.recent, kind="email", limit=1000)) == 63


def test_stored_facts_of_a_batch_are_each_customers_own(tmp_path, smtp_sink) -> None:
    setup = DispatchSetup(tmp_path, smtp_sink)
    customers = audience_of(setup, 4, "f")
    with setup.store.sessions.begin() as session:
        customer_store.set_consent(session, "f001", "email", False, "marketing", "test", NOON)
        customer_store.set_consent(session, "f002", "sms", True, "marketing", "test", NOON)
        customer_store.set_consent(session, "f002", "email", True, "service", "test", NOON)
    with setup.store.sessions() as session:
        batch = facts_of_many(session, [*customers, "nobody"])
        assert batch == {c: facts_of(session, c) for c in [*customers, "nobody"]}
    assert batch["f001"].consent == {"email": False} and batch["nobody"].profile is None
