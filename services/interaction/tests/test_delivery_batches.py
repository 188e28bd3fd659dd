"""The dispatcher's and the relay's storage work in batches: a fixed number of statements
whatever the batch's size (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from interaction_factories import DispatchSetup, change, rule, trigger
from sqlalchemy import event

from ecrm_interaction.delivery.outbox_relay import OutboxRelay
from ecrm_interaction.engine.planning import PlannedAction
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import actions as action_rows
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import loyalty
from ecrm_interaction.storage.actions import Finished, Rescheduled, insert_actions, new_action
from ecrm_interaction.storage.customers import CustomerRow, write_profiles
from ecrm_interaction.storage.store import Store
from ecrm_schemas.actions import ActionStatus

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
LEASE = timedelta(minutes=2)


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile (an ``executemany`` counts once)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _plan(store: Store, n: int, prefix: str = "c") -> None:
    planned = [
        PlannedAction(f"{prefix}{i}", "webhook", "r", f"{prefix}{i}", "marketing", "m:x", "pending", NOW, {})
        for i in range(n)
    ]
    with store.sessions.begin() as session:
        insert_actions(session, [new_action(p, NOW) for p in planned])


@pytest.mark.parametrize("size", [4, 40])
def test_a_batch_is_claimed_in_one_statement_and_finished_in_one_per_kind_of_outcome(relational_store, size) -> None:
    store = relational_store
    _plan(store, size)
    with statements(store) as claim_sql, store.sessions.begin() as session:
        claimed = action_rows.claim_due(session, NOW, size, LEASE)
    assert len(claimed) == size and len(claim_sql) == 1, claim_sql
    with store.sessions.begin() as session:
        assert action_rows.claim_due(session, NOW, size, LEASE) == []  # leased

    done, retried = claimed[: size // 2], claimed[size // 2 :]
    finished = [
        Finished(a.id, ActionStatus.DONE, "delivered", NOW, 1, a.dedup_key, recipient="https://x") for a in done
    ]
    rescheduled = [
        Rescheduled(a.id, ActionStatus.PENDING, NOW + timedelta(seconds=2), 1, None, "boom") for a in retried
    ]
    with statements(store) as finish_sql, store.sessions.begin() as session:
        action_rows.finish(session, finished, rescheduled)
    assert len(finish_sql) == 2, finish_sql

    rows = {a.id: a for a in store.read(action_store.recent, limit=1000)}
    assert {rows[a.id].status for a in done} == {"done"} and {rows[a.id].recipient for a in done} == {"https://x"}
    assert {(rows[a.id].status, rows[a.id].last_error, rows[a.id].attempts) for a in retried} == {
        ("pending", "boom", 1)
    }
    assert all(row.lease_until is None for row in rows.values())
    with store.sessions.begin() as session:  # the retries are due again when their time comes, not before
        assert action_rows.claim_due(session, NOW + timedelta(seconds=1), size, LEASE) == []
        again = action_rows.claim_due(session, NOW + timedelta(seconds=3), size, LEASE)
    assert sorted(a.id for a in again) == sorted(a.id for a in retried)


def test_two_claims_never_share_an_action(relational_store) -> None:
    store = relational_store
    _plan(store, 10)
    with store.sessions.begin() as first, store.sessions.begin() as second:
        a = action_rows.claim_due(first, NOW, 6, LEASE)
        first.commit()
        b = action_rows.claim_due(second, NOW, 6, LEASE)
    assert len(a) == 6 and len(b) == 4 and not {x.id for x in a} & {x.id for x in b}


def test_a_finish_keeps_the_recipient_and_subject_it_is_not_given(relational_store) -> None:
    store = relational_store
    _plan(store, 1)
    with store.sessions.begin() as session:
        [action] = action_rows.claim_due(session, NOW, 1, LEASE)
        action_rows.finish(session, [Finished(action.id, ActionStatus.SENT, "ok", NOW, 1, "k", "a@x", "Hi")], [])
    with store.sessions.begin() as session:
        action_rows.finish(session, [Finished(action.id, ActionStatus.FAILED, "later", NOW, 2, "k2")], [])
    [row] = store.read(action_store.actions_by_id, [action.id])
    assert (row.status, row.recipient, row.subject, row.dedup_key, row.attempts) == ("failed", "a@x", "Hi", "k2", 2)


@pytest.mark.parametrize("size", [3, 30])
def test_the_relay_reads_a_batch_in_four_queries(relational_store, size) -> None:
    store = relational_store
    _plan(store, size)
    with store.sessions.begin() as session:
        for i in range(size):
            profile = orjson.dumps({"customer_id": f"c{i}", "user_id": f"c{i}"}).decode()
            write_profiles(session, [CustomerRow(f"c{i}", profile, 1, None, None, None)])
            loyalty.add_points(session, f"c{i}", 10 + i, "order", f"p{i}", None, NOW)
        claimed = action_rows.claim_due(session, NOW, size, LEASE)
        action_rows.finish(session, [Finished(a.id, ActionStatus.DONE, "ok", NOW, 1, a.dedup_key) for a in claimed], [])
    relay = OutboxRelay(store, producer=None)
    with statements(store) as sql:
        batch = relay.read_batch()
    assert len(sql) == 4, sql
    assert len(batch.actions) == size and len(batch.rows) == size
    assert batch.profiles["c1"]["user_id"] == "c1" and batch.balances == {f"c{i}": 10 + i for i in range(size)}


async def _dispatch_statements(tmp_path: Any, smtp_sink: Any, customers: int) -> int:
    setup = DispatchSetup(tmp_path / str(customers), smtp_sink, interaction_send_concurrency=customers)
    setup.rules(rule(cooldown="1d"), templates=(TemplateSpec(id="t", subject="Hi", text="Hello"),))
    for i in range(customers):
        setup.take(change(trigger(message_id=f"m{i}"), customer=f"u{i}", email=f"u{i}@example.com"))
    with statements(setup.store) as sql:
        await setup.dispatcher.dispatch(setup.noon)
    assert [a.status for a in setup.decisions(limit=1000)] == ["sent"] * customers
    return len(sql)


async def test_a_batch_of_emails_takes_the_same_statements_whatever_its_size(tmp_path, smtp_sink) -> None:
    """Claim, profiles, rules, contacts, histories, balances, outcomes: per batch, not per email.
    The one statement per email is the send recorded the moment the server accepted it (so a
    crash cannot send it twice: tests/…/test_interaction_process.py)."""
    few = await _dispatch_statements(tmp_path, smtp_sink, 2)
    many = await _dispatch_statements(tmp_path, smtp_sink, 12)
    assert many - 12 == few - 2, (few, many)
