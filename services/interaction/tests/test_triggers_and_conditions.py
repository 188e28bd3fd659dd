"""Which rules fire, and the conditions on the customer (pure)."""

from datetime import timedelta

import pytest
from interaction_factories import T0, change, facts, rule, trigger
from pydantic import ValidationError

from ecrm_interaction.consumer.intake import contact_changes
from ecrm_interaction.engine.conditions import Facts, compare, holds, lookup
from ecrm_interaction.engine.rules import EventMatch, RuleSpec, parse_duration
from ecrm_interaction.engine.triggers import (
    OWN_EVENTS,
    RuleIndex,
    cancels,
    crossed,
    event_firings,
    loyalty_firings,
    schedule_firings,
    segment_firings,
    trait_firings,
    wait_cancelled_by,
)
from ecrm_schemas.own_events import EventOrigin
from ecrm_schemas.segments import SegmentMembershipChanged

BIG_ORDER = rule(id="big", trigger={"kind": "event", "event": "Order Completed", "where": {"total": {"gt": 100}}})


def test_event_rules_fire_on_type_or_track_name_with_property_filters() -> None:
    c = change(
        trigger("track", "Order Completed", message_id="a", total=150),
        trigger("track", "Order Completed", message_id="b", total=50),
        trigger("identify", message_id="c"),
    )
    firings = event_firings(c, [BIG_ORDER, rule(id="hello")])
    assert [(f.rule.id, f.cause) for f in firings] == [("big", "m:a"), ("hello", "m:c")]
    assert firings[0].dedup_key == "big:u1:m:a" and "total gt 100" in firings[0].reason
    assert firings[0].trigger["properties"]["total"] == 150


def test_filters_take_lists_nested_paths_and_existence() -> None:
    by_category = rule(
        trigger={
            "kind": "event",
            "event": "Product Viewed",
            "where": {"category": ["shoes", "bags"], "meta.source": "ad", "sku": {"exists": True}},
        }
    )
    hit = trigger("track", "Product Viewed", category="bags", meta={"source": "ad"}, sku="s1")
    miss = trigger("track", "Product Viewed", category="hats", meta={"source": "ad"}, sku="s1")
    no_sku = trigger("track", "Product Viewed", category="bags", meta={"source": "ad"})
    assert len(event_firings(change(hit, miss, no_sku), [by_category])) == 1


def test_once_per_customer_keys_ignore_the_event_and_own_events_never_trigger() -> None:
    once = rule(once_per_customer=True)
    own = trigger(message_id=f"{OWN_EVENTS}x").model_copy(update={"origin": EventOrigin.INTERACTION})
    c = change(trigger(message_id="a"), trigger(message_id="b"), own)
    keys = {f.dedup_key for f in event_firings(c, [once])}
    assert keys == {"r:u1"}
    assert len(event_firings(c, [rule()])) == 2
    assert event_firings(c, [rule(enabled=False)]) == []


def test_a_client_event_with_the_services_message_id_prefix_is_a_client_event() -> None:
    """The mark of the service's own events is ``TriggerEvent.origin`` (the aggregator sets it
    from a Kafka header only the service sends), not the message id: a client that sends an
    ``ecrm-interaction-…`` id is acted on like any client (before: its unsubscribe, its order
    and the waits it ends were ignored as if the service had sent them)."""
    forged = trigger("track", "Unsubscribed", message_id=f"{OWN_EVENTS}unsubscribe-u1")
    on_unsubscribe = rule(trigger={"kind": "event", "event": "Unsubscribed"})
    assert forged.origin is EventOrigin.CLIENT
    assert [f.cause for f in event_firings(change(forged), [on_unsubscribe])] == [f"m:{OWN_EVENTS}unsubscribe-u1"]
    assert [c.kind for c in contact_changes(forged)] == ["unsubscribed"]
    assert cancels([EventMatch(event="Unsubscribed")], forged)

    own = forged.model_copy(update={"origin": EventOrigin.INTERACTION})
    assert event_firings(change(own), [on_unsubscribe]) == []
    assert contact_changes(own) == []
    assert not cancels([EventMatch(event="Unsubscribed")], own)


def test_the_rule_index_gives_each_change_the_firings_every_rule_gives() -> None:
    rules = [
        BIG_ORDER,
        rule(id="hello"),  # identify
        rule(id="off", enabled=False),
        rule(id="views", trigger={"kind": "event", "event": "page"}),
        rule(id="churn", trigger={"kind": "trait", "trait": "computed.churn_risk", "becomes": "high"}),
        rule(id="any-order", trigger={"kind": "event", "event": "Order Completed"}),
    ]
    changes = [
        change(trigger("track", "Order Completed", message_id="a", total=150), trigger("identify", message_id="b")),
        change(trigger("track", "Order Completed", message_id="c", total=5)),
        change(
            trigger("page", message_id="d"),
            changed=["computed.churn_risk"],
            previous={"computed.churn_risk": "low"},
            computed={"churn_risk": "high"},
        ),
        change(trigger("track", "Product Viewed", message_id="e")),
    ]
    index = RuleIndex.of(rules)
    for c in changes:
        candidates = index.candidates(c)
        assert event_firings(c, candidates) + trait_firings(c, candidates) == event_firings(c, rules) + trait_firings(
            c, rules
        )
    assert [r.id for r in index.candidates(changes[0])] == ["big", "hello", "any-order"]
    assert index.candidates(changes[3]) == [], "nothing listens to product views"


def test_a_trait_crossing_fires_once_per_profile_version() -> None:
    high = rule(id="churn", trigger={"kind": "trait", "trait": "computed.churn_risk", "becomes": "high"})
    became = change(
        changed=["computed.churn_risk"],
        previous={"computed.churn_risk": "medium"},
        computed={"churn_risk": "high"},
        version=7,
    )
    [firing] = trait_firings(became, [high])
    assert firing.dedup_key == "churn:u1:t:computed.churn_risk:7" and "became 'high'" in firing.reason
    stayed = change(changed=["orders"], computed={"churn_risk": "high"})  # not among what changed
    assert trait_firings(stayed, [high]) == []


def test_crossings_above_and_below_need_a_value_before() -> None:
    below = RuleSpec.model_validate(
        {
            "id": "low",
            "name": "n",
            "actions": [{"kind": "points", "points": 1}],
            "trigger": {"kind": "trait", "trait": "computed.engagement_score", "below": 20},
        }
    ).trigger
    assert crossed(below, 30, 10) and not crossed(below, 15, 10) and not crossed(below, None, 10)
    becomes = RuleSpec.model_validate(
        {
            "id": "g",
            "name": "n",
            "actions": [{"kind": "points", "points": 1}],
            "trigger": {"kind": "trait", "trait": "loyalty.tier", "becomes": "gold"},
        }
    ).trigger
    assert (
        crossed(becomes, None, "gold") and crossed(becomes, "silver", "gold") and not crossed(becomes, "gold", "gold")
    )
    with pytest.raises(ValidationError, match="exactly one"):
        RuleSpec.model_validate(
            {
                "id": "x",
                "name": "n",
                "actions": [{"kind": "points", "points": 1}],
                "trigger": {"kind": "trait", "trait": "orders", "above": 1, "below": 5},
            }
        )


def test_loyalty_tier_rules_fire_when_the_balance_crosses() -> None:
    gold = rule(id="gold", trigger={"kind": "trait", "trait": "loyalty.tier", "becomes": "gold"})
    fired = loyalty_firings([gold], "u1", {"points": 1900, "tier": "silver"}, {"points": 2100, "tier": "gold"}, "m9")
    assert [f.cause for f in fired] == ["l:loyalty.tier:m9"]
    assert loyalty_firings([gold], "u1", {"tier": "gold"}, {"tier": "gold"}, "m10") == []


def test_segment_rules_fire_on_entry_or_exit() -> None:
    entered = SegmentMembershipChanged(
        event_id="e1",
        type="segment.entered",
        segment_id="vip",
        segment_name="VIP",
        customer_id="u1",
        at=T0,
        trigger="event",
        reason="revenue ≥ 500",
    )
    on_entry = rule(id="in", trigger={"kind": "segment", "segment": "vip"})
    on_exit = rule(id="out", trigger={"kind": "segment", "segment": "vip", "change": "exited"})
    [firing] = segment_firings(entered, [on_entry, on_exit])
    assert firing.rule.id == "in" and firing.cause == "s:e1" and "VIP" in firing.reason


def test_schedules_fire_per_customer_and_slot() -> None:
    weekly = rule(id="news", trigger={"kind": "schedule", "cron": "0 9 * * MON", "segment": "vip"})
    firings = schedule_firings(weekly, ["a", "b"], T0)
    assert [f.dedup_key for f in firings] == [f"news:a:c:{T0.isoformat()}", f"news:b:c:{T0.isoformat()}"]
    with pytest.raises(ValidationError, match="cron"):
        rule(trigger={"kind": "schedule", "cron": "every monday"})
    with pytest.raises(ValidationError, match="time zone"):
        rule(trigger={"kind": "schedule", "cron": "0 9 * * MON", "timezone": "Mars/Olympus"})


def test_waits_are_cancelled_by_the_events_they_name() -> None:
    spec = rule(wait={"duration": "1h", "cancel_on": [{"event": "Order Completed"}]})
    assert spec.wait is not None and spec.wait.duration == parse_duration(3600)
    assert cancels(spec.wait.cancel_on, trigger("track", "Order Completed"))
    assert not cancels(spec.wait.cancel_on, trigger("track", "Product Viewed"))


def test_a_wait_started_in_a_change_is_cancelled_only_by_the_events_after_its_own() -> None:
    spec = rule(wait={"duration": "1h", "cancel_on": [{"event": "Order Completed"}]})
    assert spec.wait is not None
    match = spec.wait.cancel_on
    early = trigger("track", "Order Completed", message_id="o0", at=T0 - timedelta(minutes=5))
    cart = trigger("track", "Product Added", message_id="p1")
    same_instant = trigger("track", "Order Completed", message_id="o1")
    later = trigger("track", "Order Completed", message_id="o2", at=T0 + timedelta(seconds=1))
    assert wait_cancelled_by(match, change(early, cart), "m:p1") is None
    assert wait_cancelled_by(match, change(cart, early), "m:p1") is None  # an older order delivered late
    assert wait_cancelled_by(match, change(same_instant, cart), "m:p1") is None
    assert wait_cancelled_by(match, change(early, cart, same_instant, later), "m:p1") == same_instant
    assert wait_cancelled_by(match, change(later, cart), "m:p1") == later
    assert wait_cancelled_by(match, change(early), "m:an-earlier-cart") == early  # planned before the change
    assert wait_cancelled_by(match, change(cart, later.model_copy(update={"backfill": True})), "m:p1") is None


def test_conditions_read_traits_computed_traits_event_counts_segments_and_consent() -> None:
    profile = {
        "customer_id": "u1",
        "orders": 3,
        "revenue": "120.5",
        "traits": {"plan": "gold"},
        "computed": {"rfm_segment": "champions"},
        "event_counts": {"Order Completed": 3},
    }
    known = Facts(profile, frozenset({"vip"}), {"email": True}, {"points": 700, "tier": "silver"})
    spec = rule(conditions={"kind": "all", "conditions": [
        {"kind": "trait", "trait": "orders", "op": "gte", "value": 2},
        {"kind": "trait", "trait": "revenue", "op": "gt", "value": 100},
        {"kind": "trait", "trait": "traits.plan", "op": "in", "value": ["gold", "platinum"]},
        {"kind": "trait", "trait": "computed.rfm_segment", "op": "eq", "value": "champions"},
        {"kind": "trait", "trait": "event_counts.Order Completed", "op": "eq", "value": 3},
        {"kind": "segment", "segment": "vip"}, {"kind": "consent", "channel": "email"},
        {"kind": "none", "conditions": [{"kind": "segment", "segment": "blocked"}]},
    ]})  # fmt: skip
    assert holds(spec.conditions, known)
    assert not holds(spec.conditions, Facts(profile, frozenset({"vip"}), {"email": False}))
    assert not holds(spec.conditions, facts())
    assert lookup(profile, "loyalty.points", {"points": 700}) == 700


def test_missing_values_fail_comparisons_but_not_their_negations() -> None:
    assert not compare(None, "gt", 1) and not compare(None, "eq", "x") and compare(None, "ne", "x")
    assert compare(None, "not_in", ["a"]) and compare("", "exists", False)
    assert compare("2026-11-20T10:00:00Z", "gt", "2026-11-01T00:00:00+00:00")  # times as times
    assert compare(True, "eq", True) and not compare("10", "lt", 9)
