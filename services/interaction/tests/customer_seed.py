"""Customers for the Customers pages' tests: ClickHouse rows (profiles, events, identity,
segments) as the aggregator writes them, and the relational rows the interaction service
keeps (the profile, an email sent, a skipped decision)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import Action, Customer, CustomerSegment, SkippedDecision
from ecrm_interaction.storage.store import Store
from ecrm_schemas.profile import ComputedTraits, CustomerProfile

NOW = datetime.now(UTC).replace(microsecond=0)
EMAIL_ID = "act-welcome-alice"
GENERATED = 30
"""Customers ``c-gen-00`` … besides Alice and Bob (for the pages of the list)."""


def _profile_row(customer_id: str, email: str, traits: dict[str, Any], last_seen: datetime, **scores: Any) -> dict:
    return {
        "customer_id": customer_id, "user_id": customer_id, "anonymous_id": "", "email": email,
        "traits": orjson.dumps(traits).decode(), "first_seen": last_seen - timedelta(days=60),
        "last_seen": last_seen, "event_count": 3, "orders": scores.pop("orders", 0),
        "revenue": Decimal(scores.pop("revenue", 0)), "version": 1, "source_partition": 0, "source_offset": 1,
        "lifecycle_stage": scores.pop("stage", "prospect"), "rfm_segment": scores.pop("rfm", ""),
        "loyalty_tier": scores.pop("tier", "bronze"), "loyalty_points": scores.pop("points", 0),
        "engagement_score": 10, "merged_into": scores.pop("merged_into", ""),
    }  # fmt: skip


def seed_clickhouse(client: Any, database: str) -> None:
    """Migrate ``database`` and write Alice (active champion, gold, in segment ``vip``, one
    anonymous id stitched to her, events, an email delivered and opened), Bob (a prospect) and
    :data:`GENERATED` new customers, the most recently seen first: Alice, Bob, c-gen-00…"""
    migrate_clickhouse(client, database)
    rows = [
        _profile_row("c-alice", "alice@example.com", {"firstName": "Alice", "lastName": "Liddell", "plan": "pro"},
                     NOW, stage="active", rfm="champions", tier="gold", points=1200, orders=12, revenue="2400.5"),
        _profile_row("c-bob", "bob@example.com", {"name": "Bob Stone", "plan": "free"}, NOW - timedelta(hours=1)),
        _profile_row("anon-1", "", {}, NOW - timedelta(days=3), merged_into="c-alice"),
    ]  # fmt: skip
    rows += [
        _profile_row(f"c-gen-{i:02d}", f"gen{i}@example.org", {"name": f"Generated {i}"},
                     NOW - timedelta(days=1, minutes=i), stage="new")
        for i in range(GENERATED)
    ]  # fmt: skip
    columns = list(rows[0])
    client.insert(f"{database}.profiles", [[r[c] for c in columns] for r in rows], column_names=columns)
    client.insert(
        f"{database}.identity_links",
        [["anon-1", "c-alice", "merged", "msg-identify", NOW - timedelta(days=2), "aggregator", 1]],
        column_names=["anonymous_id", "user_id", "state", "message_id", "changed_at", "actor", "version"],
    )
    client.insert(
        f"{database}.identity_merges",
        [[NOW - timedelta(days=2), "merged", "anon-1", "c-alice", "msg-identify", "aggregator",
          "identify with both ids"]],
        column_names=["at", "action", "anonymous_id", "user_id", "message_id", "actor", "reason"],
    )  # fmt: skip

    def event(customer: str, name: str, at: datetime, **properties: Any) -> list[Any]:
        return [uuid.uuid4().hex, customer, customer, "", "track", name, at, at, orjson.dumps(properties).decode(),
                "{}", "{}", 0, 1]  # fmt: skip

    events = [
        event("c-alice", "Order Completed", NOW - timedelta(hours=5), order_id="o-1", revenue=120),
        event("anon-1", "Product Viewed", NOW - timedelta(days=3), product_id="p-7"),
        event("c-alice", "Email Delivered", NOW - timedelta(hours=3), email_id=EMAIL_ID),
        event("c-alice", "Email Opened", NOW - timedelta(hours=2), email_id=EMAIL_ID),
        event("c-bob", "Email Bounced", NOW - timedelta(hours=2), email_id="act-other"),
    ]
    client.insert(
        f"{database}.events", events,
        column_names=["message_id", "customer_id", "user_id", "anonymous_id", "type", "event", "timestamp",
                      "received_at", "properties", "traits", "context", "source_partition", "source_offset"],
    )  # fmt: skip
    client.insert(
        f"{database}.segment_definitions",
        [["vip", "VIPs", "", "{}", 0, NOW - timedelta(days=9), 1]],
        column_names=["segment_id", "name", "description", "definition", "deleted", "updated_at", "version"],
    )
    client.insert(
        f"{database}.segment_membership",
        [["vip", "c-alice", 1, NOW - timedelta(hours=4), "orders ≥ 10", 1]],
        column_names=["segment_id", "customer_id", "is_member", "changed_at", "reason", "version"],
    )
    client.insert(
        f"{database}.segment_changes",
        [[NOW - timedelta(hours=4), "vip", "VIPs", "c-alice", "entered", "event", "orders ≥ 10", "e-1"]],
        column_names=["at", "segment_id", "segment_name", "customer_id", "change", "trigger", "reason", "event_id"],
    )


def alice_profile() -> CustomerProfile:
    return CustomerProfile(
        customer_id="c-alice", user_id="c-alice", email="alice@example.com",
        traits={"firstName": "Alice", "lastName": "Liddell", "plan": "pro"},
        first_seen=NOW - timedelta(days=60), last_seen=NOW, orders=12, revenue=Decimal("2400.5"),
        first_order_at=NOW - timedelta(days=50), last_order_at=NOW - timedelta(hours=5),
        last_active_at=NOW - timedelta(hours=2), typical_interval_days=3.5,
        engagement_raw=12.0, engagement_at=NOW - timedelta(hours=2),
        computed=ComputedTraits(as_of=NOW, rfm_recency=5, rfm_frequency=5, rfm_monetary=5, rfm_segment="champions",
                                engagement_score=45, churn_ratio=0.024, churn_risk="low", lifecycle_stage="active",
                                loyalty_points=1200, loyalty_tier="gold"),
    )  # fmt: skip


def seed_relational(store: Store) -> None:
    """Alice's stored profile, the welcome email sent to her (its template is ``welcome``), and
    a skipped decision of the rule ``winback``."""
    payload = {
        "profile": alice_profile().model_dump(mode="json"),
        "trigger": {"type": "track", "event": "Signed Up"},
        "reason": "signed up",
        "action": {"kind": "email", "template": "welcome"},
    }

    def write(session: Any) -> None:
        session.add(Customer(customer_id="c-alice", profile=alice_profile().model_dump_json(), profile_version=1,
                             email="alice@example.com"))  # fmt: skip
        session.add(Action(
            id=EMAIL_ID, dedup_key="welcome:c-alice", rule_id="welcome", customer_id="c-alice", kind="email",
            category="onboarding", cause="event:msg-signup", status="sent", reason="allowed",
            due_at=NOW - timedelta(hours=4), payload=orjson.dumps(payload).decode(), recipient="alice@example.com",
            subject="Welcome, Alice", attempts=1, created_at=NOW - timedelta(hours=4), done_at=NOW - timedelta(hours=4),
        ))  # fmt: skip
        session.add(CustomerSegment(customer_id="c-alice", segment_id="vip", segment_name="VIPs",
                                    since=NOW - timedelta(hours=4)))  # fmt: skip
        session.add(SkippedDecision(
            id="skip-1", rule_id="winback", customer_id="c-alice", reason="conditions_not_met",
            detail="lifecycle_stage is active, not churned", cause="profile:c-alice", count=2,
            first_at=NOW - timedelta(hours=6), last_at=NOW - timedelta(hours=1),
        ))  # fmt: skip

    store.write(write)
    welcome = TemplateSpec(id="welcome", subject="Welcome, {{ traits.firstName }}",
                           text="Hello {{ traits.firstName }}, welcome aboard ({{ reason }}).",
                           html="<p>Hello <b>{{ traits.firstName }}</b></p>")  # fmt: skip
    store.write(rule_store.upsert_rules, [welcome], [], "test")
