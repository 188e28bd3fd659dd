"""The set-based intake: a batch is a fixed number of statements whatever its size, and it ends
where taking its changes one batch at a time ends (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from interaction_factories import T0, change, trigger
from sqlalchemy import event, select

from ecrm_interaction.consumer.intake import IntakeStep
from ecrm_interaction.engine.rules_file import load_rules_file
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import (
    Action,
    AddressSuppression,
    Consent,
    Customer,
    CustomerSegment,
    LoyaltyEntry,
    OutboxEvent,
    SkippedDecision,
)
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.segments import SegmentMembershipChanged

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "rules.yaml"
NOW = T0 + timedelta(minutes=30)


def _store(url: str) -> Store:
    engine = make_engine(url)
    migrate(engine)
    spec = load_rules_file(EXAMPLES)
    store = Store(engine)
    store.write(rule_store.upsert_rules, spec.templates, spec.rules, "test")
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request, tmp_path) -> list[Store]:
    """Two migrated stores with the example rules, on SQLite or on PostgreSQL."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"]
    else:
        import psycopg

        cluster = request.getfixturevalue("postgres_cluster")
        urls = []
        for _ in range(2):
            name = f"test_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(cluster.url().replace("+psycopg", ""), autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            urls.append(cluster.url(name))
    made = [_store(url) for url in urls]
    yield made
    for store in made:
        store.engine.dispose()


def _changes(customers: int, start: int = 0) -> list[Any]:
    """Every kind of change, several per customer: carts and the orders that end them, a welcome,
    points, consent, an unsubscribe, a hard bounce, a merged visitor, segment changes."""
    out: list[Any] = []
    for n in range(start, start + customers):
        c, at = f"u{n}", T0 + timedelta(seconds=n)
        out += [
            change(trigger("identify", message_id=f"i{n}", at=at), customer=c, version=1),
            change(trigger("track", "Product Added", message_id=f"p{n}", at=at, product_id="x"), customer=c, version=2),
            change(trigger("track", "Product Viewed", message_id=f"v{n}", at=at, product_id="y"), customer=c,
                   version=3),
            change(trigger("track", "Order Completed", message_id=f"o{n}", at=at + timedelta(seconds=1), total=600),
                   customer=c, version=4),
            change(trigger("track", "Consent Updated", message_id=f"k{n}", at=at, channel="email", granted=False),
                   customer=c, version=5),
            change(trigger("track", "Email Link Clicked", message_id=f"l{n}", at=at, email_id="e1"), customer=c,
                   version=6),
            change(trigger("track", "Unsubscribed", message_id=f"x{n}", at=at), customer=c, version=7),
            change(trigger("track", "Consent Updated", message_id=f"g{n}", at=at + timedelta(seconds=5),
                           channel="email", granted=True), customer=c, version=8),
            change(trigger("track", "Email Bounced", message_id=f"b{n}", at=at, bounce_type="hard"), customer=c,
                   version=9),
            change(trigger("track", "Product Added", message_id=f"q{n}", at=at, product_id="z"), customer=f"a{n}",
                   version=1),
            change(trigger("identify", message_id=f"m{n}", at=at), customer=f"a{n}", version=2).model_copy(
                update={"profile": change(customer=f"a{n}", version=2).profile.model_copy(
                    update={"merged_into": c})}
            ),
            change(trigger("track", "NPS Answered", message_id=f"n{n}", at=at, score=3), customer=c, version=10),
        ]  # fmt: skip
        for index, kind in enumerate(("segment.entered", "segment.exited", "segment.entered")):
            out.append(
                SegmentMembershipChanged(
                    event_id=f"s{n}-{index}",
                    type=kind,
                    segment_id="vip",
                    segment_name="VIP",
                    customer_id=c,
                    at=at + timedelta(seconds=index),
                    trigger="event",
                    reason="revenue",
                )
            )
    return out


def _take(store: Store, batch: list[Any]) -> Any:
    rules, _ = store.read(rule_store.enabled_rules)
    with store.sessions.begin() as session:
        return IntakeStep(store, "secret").take(session, batch, rules, store.read(rule_store.loyalty_program), NOW)


def _state(store: Store) -> dict[str, Any]:
    with store.sessions() as s:
        return {
            "actions": sorted(
                (a.customer_id, a.rule_id, a.kind, a.status, a.reason or "", a.cause, "~released~" in a.dedup_key)
                for a in s.scalars(select(Action))
            ),
            "customers": sorted(
                (c.customer_id, c.profile_version, c.email, c.unsubscribed_at is not None)
                for c in s.scalars(select(Customer))
            ),
            "consents": sorted((c.customer_id, c.channel, c.purpose, c.granted) for c in s.scalars(select(Consent))),
            "segments": sorted((m.customer_id, m.segment_id) for m in s.scalars(select(CustomerSegment))),
            "ledger": sorted((e.customer_id, e.points, e.dedup_key) for e in s.scalars(select(LoyaltyEntry))),
            "outbox": sorted((e.customer_id, e.name) for e in s.scalars(select(OutboxEvent))),
            "suppressions": sorted((x.address_digest, x.reason) for x in s.scalars(select(AddressSuppression))),
            "skips": sorted((k.rule_id, k.customer_id, k.reason, k.count) for k in s.scalars(select(SkippedDecision))),
        }


def _profiles_first(changes: list[Any]) -> list[Any]:
    return sorted(changes, key=lambda c: isinstance(c, SegmentMembershipChanged))


def test_a_batch_ends_where_its_changes_taken_one_by_one_end(stores) -> None:
    one_by_one, batched = stores
    changes = _profiles_first(_changes(4))
    for c in changes:
        _take(one_by_one, [c])
    _take(batched, changes)
    state = _state(batched)
    assert state == _state(one_by_one)
    # the batch did everything it could: a cart cancelled by its order, a merged visitor's cart
    # cancelled, points, a case, consent, a suppression, segment membership
    statuses = {(a[1], a[3], a[4].split(" (")[0]) for a in state["actions"]}
    assert ("cart-reminder", "cancelled", "wait cancelled by Order Completed") in statuses
    assert ("cart-reminder", "cancelled", "profile_merged") in statuses
    assert {a[1] for a in state["actions"]} >= {"welcome-on-first-identify", "thanks-for-order", "detractor-case"}
    assert state["ledger"] and state["suppressions"] and state["consents"] and state["segments"]


def test_a_redelivered_batch_changes_nothing(stores) -> None:
    store, _ = stores
    changes = _profiles_first(_changes(3))
    first = _take(store, changes)
    before = _state(store)
    again = _take(store, changes)
    assert first.planned > 0 and first.points > 0
    assert (again.planned, again.points) == (0, 0)
    assert _state(store) == before


def test_a_batch_is_a_fixed_number_of_statements_whatever_its_size(stores) -> None:
    small_store, large_store = stores
    counts = []
    for store, customers in ((small_store, 2), (large_store, 40)):
        statements: list[str] = []

        def listener(*args: Any, seen: list[str] = statements) -> None:
            seen.append(args[2])  # (connection, cursor, statement, ...)

        event.listen(store.engine, "before_cursor_execute", listener)
        try:
            _take(store, _profiles_first(_changes(customers)))
        finally:
            event.remove(store.engine, "before_cursor_execute", listener)
        counts.append(len([s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]))
    small, large = counts
    assert large == small, f"{customers * 15} changes took {large} statements, a batch of 30 took {small}"
    assert large <= 25
