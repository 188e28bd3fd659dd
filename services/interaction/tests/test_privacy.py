"""Privacy requests: whose ids a customer has (pure), and the relational export and erasure
(SQLite and PostgreSQL). The whole erasure across ClickHouse, Kafka and the collector is
proven end to end in ``tests/test_end_to_end.py``."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from ecrm_interaction.engine.planning import PlannedAction
from ecrm_interaction.privacy.subjects import (
    ErasureReport,
    Identities,
    Link,
    canonical_customer,
    customer_identities,
    export_document,
    jsonable,
)
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import conversations, loyalty, models
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage.actions import Skip, insert_actions, new_action, record_skips
from ecrm_interaction.storage.cases import CaseOpening
from ecrm_interaction.storage.customers import CustomerRow, SegmentRow, write_profiles, write_segments
from ecrm_interaction.storage.privacy import CUSTOMER_TABLES, customer_records, erase_customer
from ecrm_interaction.storage.store import Store

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_a_customer_is_its_user_and_the_anonymous_ids_no_other_user_owns() -> None:
    links = [
        Link("a1", "erin", merged=True),
        Link("a2", "erin", merged=False),  # split off again: its rows still name her
        Link("shared", "frank", merged=True),  # frank's device, once used by erin too
    ]
    assert canonical_customer("a1", links) == "erin"
    assert canonical_customer("a2", links) == "a2"
    assert canonical_customer("erin", links) == "erin"
    identities = customer_identities("erin", links, seen_on_events=["a3", "shared", "", "erin"])
    assert identities == Identities("erin", ("a1", "a2", "a3"))
    assert identities.all == ["erin", "a1", "a2", "a3"]
    assert customer_identities("nobody", [], []).all == ["nobody"]


def test_the_export_is_json_and_the_report_names_no_one() -> None:
    rows = {"events": [{"at": NOW, "day": date(2026, 1, 2), "revenue": Decimal("1.50"), "m": {1: [b"x"]}}]}
    document = export_document(Identities("erin", ("a1",)), rows, {"customers": []}, NOW)
    assert orjson.loads(orjson.dumps(document))["clickhouse"]["events"] == [
        {"at": NOW.isoformat(), "day": "2026-01-02", "revenue": "1.50", "m": {"1": ["x"]}}
    ]
    assert document["identities"] == ["erin", "a1"]
    assert jsonable((1, "a")) == [1, "a"]
    report = ErasureReport(identities=2, clickhouse_rows={"events": 3}, remaining={"x": 0}, seconds=0.12345)
    assert report.as_dict() == {"identities": 2, "clickhouse_rows": {"events": 3}, "relational_rows": {},
                                "remaining": {"x": 0}, "seconds": 0.123}  # fmt: skip


def test_every_table_with_a_customer_id_is_exported_and_erased() -> None:
    with_customer = {m.__tablename__ for m in models.Base.__subclasses__() if "customer_id" in m.__table__.columns}
    assert with_customer == {m.__tablename__ for m in CUSTOMER_TABLES}


@pytest.fixture
def store(relational_store):
    return relational_store


def _fill(store: Store, customer: str) -> str:
    with store.sessions.begin() as session:
        write_profiles(
            session,
            [
                CustomerRow(
                    customer, orjson.dumps({"customer_id": customer}).decode(), 1, f"{customer}@example.com", None, None
                )
            ],
        )
        customer_store.set_consent(session, customer, "email", True, "marketing", "api", NOW)
        write_segments(session, [SegmentRow(customer, "vip", "VIP", NOW)], [])
        planned = PlannedAction(f"w:{customer}", "email", "r", customer, "marketing", "m", "pending", NOW, {})
        insert_actions(session, [new_action(planned, NOW)])
        record_skips(session, [Skip("r", customer, "cooldown", "cooldown", "m:x", NOW)])
        loyalty.add_points(session, customer, 10, "order", f"p:{customer}", None, NOW)
        loyalty.issue_reward(session, customer, "coupon", f"CODE-{customer}", 0, f"r:{customer}", None, NOW)
        opening = CaseOpening(customer_id=customer, subject="help", priority="high", sla=timedelta(hours=4))
        case_id = case_store.open_case(session, opening, NOW)
        session.add(models.Broadcast(id=f"b-{customer}", name="Sale", segment_id="vip", template_id="t", variants="[]",
                                     winner_metric="clicks", rate_per_minute=60, status="scheduled",
                                     created_by="ada"))  # fmt: skip
        session.flush()
        session.add(models.BroadcastRecipient(broadcast_id=f"b-{customer}", customer_id=customer, position=0,
                                              variant="holdout"))  # fmt: skip
        chat = conversations.start(session, conversations.Opening(f"token-{customer}", "website", customer, True, "en",
                                                                  "/"), "Hi!", NOW)  # fmt: skip
        conversations.add_message(session, chat, "visitor", f"where is my order, {customer}?", NOW)
    assert case_id is not None
    store.write(case_store.add_note, case_id, "agent", f"{customer} called", NOW)
    store.write(audit_log.record, "ada", "consent", "customer", customer, {"channel": "email"})
    return case_id


def test_erasing_removes_every_row_about_the_customer_and_nothing_else(store) -> None:
    case_id = _fill(store, "erin")
    _fill(store, "frank")
    found = store.read(customer_records, ["erin"])
    assert {table: len(rows) for table, rows in found.items()} == {
        "customers": 1, "customer_segments": 1, "consents": 1, "actions": 1, "loyalty_ledger": 1, "rewards": 1,
        "loyalty_balances": 1,  # the balance kept with the ledger (issue 18)
        "broadcast_recipients": 1,  # where a broadcast placed them (issue 18)
        "cases": 1, "case_notes": 1, "audit_log": 2,  # the consent change and the case note
        "skipped_decisions": 1,
        "event_outbox": 3,  # Case Opened, Loyalty Points Awarded, Conversation Started
        "conversations": 1, "conversation_messages": 2,  # the website chat (issue 20): greeting, question
    }  # fmt: skip
    assert found["case_notes"][0]["case_id"] == case_id
    assert "frank" not in str(found)

    deleted = store.write(erase_customer, ["erin", "anon-erin"], "ada", reference="0123abcd")
    assert deleted == {table: len(rows) for table, rows in found.items()}
    assert not any(store.read(customer_records, ["erin", "anon-erin"]).values())
    assert {table: len(rows) for table, rows in store.read(customer_records, ["frank"]).items()} == {
        table: len(rows) for table, rows in found.items()
    }
    [erasure] = [a for a in store.read(audit_log.recent) if a.action == "erase"]
    assert (erasure.entity_id, erasure.actor) == ("0123abcd", "ada") and "erin" not in erasure.detail
    assert store.write(erase_customer, ["erin"], "ada", reference="0123abcd", audit=False) == dict.fromkeys(deleted, 0)
