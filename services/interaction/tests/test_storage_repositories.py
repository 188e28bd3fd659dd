"""The storage room's shape: queries live in the repository module of their aggregate, the
``Store`` only holds the unit of work; and one-customer reads agree with the batch reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from interaction_factories import DispatchSetup, change, rule, trigger

from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage.contacts import message_history
from ecrm_interaction.storage.store import Store

NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)
HELLO = TemplateSpec(id="t", subject="Hello", text="Hello", html="<p>Hello</p>")


def test_the_store_holds_the_unit_of_work_only() -> None:
    extra = {name for name in vars(Store) if not name.startswith("__")} - {"read", "write"}
    assert not extra, (
        f"Store has {sorted(extra)}: a query belongs in the repository module of its aggregate "
        "(storage/<aggregate>.py, a function taking a session); callers without a session use store.read/write"
    )


async def test_the_message_history_is_what_reached_the_customer_in_the_window(tmp_path, smtp_sink) -> None:
    setup = DispatchSetup(tmp_path, smtp_sink)
    setup.rules(rule(id="hello"), templates=(HELLO,))
    setup.take(change(trigger(message_id="m1")))
    await setup.tick(NOON)
    [sent] = setup.store.read(action_store.recent, kind="email")
    assert sent.status == "sent" and sent.category == "marketing"
    hour = timedelta(hours=1)
    assert setup.store.read(message_history, "u1", "hello", NOON - hour) == ([sent.done_at], sent.done_at)
    assert setup.store.read(message_history, "u1", "other", NOON - hour) == ([sent.done_at], None)
    assert setup.store.read(message_history, "u1", None, NOON - hour) == ([sent.done_at], None)
    assert setup.store.read(message_history, "u1", "hello", NOON + hour) == ([], None)
    assert setup.store.read(message_history, "u2", "hello", NOON - hour) == ([], None)


def test_the_batch_read_of_customers_carries_the_profiles_asked_for_only(relational_store) -> None:
    from ecrm_interaction.storage.customers import CustomerRow, read_customers, write_profiles

    rows = [CustomerRow(f"c{i}", f'{{"customer_id": "c{i}"}}', 1, f"c{i}@example.com", None, None) for i in range(3)]
    relational_store.write(write_profiles, rows)
    every = relational_store.read(read_customers, ["c0", "c1", "c2", "nobody"])
    assert sorted(every) == ["c0", "c1", "c2"] and all(r.profile for r in every.values())
    some = relational_store.read(read_customers, ["c0", "c1", "c2"], {"c1", "nobody"})
    assert {c: r.profile for c, r in some.items()} == {"c0": None, "c1": '{"customer_id": "c1"}', "c2": None}
    assert some["c0"].email == "c0@example.com" and some["c0"].profile_version == 1
    assert all(r.profile is None for r in relational_store.read(read_customers, ["c0", "c2"], set()).values())
