from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aggregator_factories import event, record

from ecrm_aggregator.decode import decode_records
from ecrm_aggregator.identity import decide
from ecrm_aggregator.pipeline import FoldResult, dedup_token, fold_batch, group_by_customer, new_events, plan_batch
from ecrm_aggregator.profile_folding import fold
from ecrm_aggregator.profile_state import RECENT_MESSAGE_IDS
from ecrm_schemas.suppressions import SuppressionList

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def split(records, current=None, stored=None):
    """new_events for a batch without identity links; ``stored``: what a look-up of every partition found."""
    plan = plan_batch(records)
    identity = decide(plan.link_requests, {}, plan.known_users, NOW)
    unsettled = set(plan.spans) if stored is not None else set()
    return plan, identity, new_events(plan, identity, current or {}, stored, unsettled)


def fold_records(records, current=None, stored=None) -> FoldResult:
    """The pure chain for a batch without identity links or stored history."""
    _, identity, fresh = split(records, current, stored)
    return fold_batch(group_by_customer(fresh.to_fold, identity), current or {}, NOW)


def _history():
    order = "Order Completed"
    click = {"email_id": "e1", "link_url": "https://x.example/"}
    return [
        record(event("identify", traits={"email": "ada@example.com", "name": "Ada"}, ts="2026-11-20T10:00:00Z"), 0),
        record(event("page", ts="2026-11-20T10:01:00Z"), 1),
        record(event(event=order, properties={"order_id": "o1", "total": 20.5}, ts="2026-11-20T10:02:00Z"), 2),
        record(event(event=order, properties={"order_id": "o2", "total": 10, "revenue": 8}, ts="2026-11-20T10:03Z"), 3),
        record(event(event="Email Opened", properties={"email_id": "e1"}, ts="2026-11-20T10:04:00Z"), 4),
        record(event(event="Email Link Clicked", properties=click, ts="2026-11-20T10:05:00Z"), 5),
        record(event(event="NPS Answered", properties={"survey_id": "s", "score": 3}, ts="2026-11-20T10:06:00Z"), 6),
        record(event(event="NPS Answered", properties={"survey_id": "s", "score": 9}, ts="2026-11-20T09:00:00Z"), 7),
    ]


def test_profile_folds_counts_revenue_email_and_latest_nps() -> None:
    folded = fold(None, decode_records(_history()).events, NOW)
    assert folded is not None
    p = folded.profile
    assert (p.customer_id, p.email, p.traits["name"]) == ("u1", "ada@example.com", "Ada")
    assert p.event_count == 8 and p.page_views == 1 and p.orders == 2
    assert p.revenue == Decimal("28.5")  # revenue wins over total when both are sent
    assert (p.email_opened, p.email_clicked) == (1, 1)
    assert p.nps_latest == 3  # the score answered at 09:00 arrived late and is older
    assert p.surveys_answered == 2
    assert p.event_counts == {"identify": 1, "page": 1, "Order Completed": 2, "Email Opened": 1,
                              "Email Link Clicked": 1, "NPS Answered": 2}  # fmt: skip
    assert p.first_seen == datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert (p.source_partition, p.source_offset, p.positions, p.version) == (0, 7, {0: 7}, 8)
    assert "email" in folded.changed and "version" not in folded.changed


def test_redelivered_events_are_not_folded_twice() -> None:
    events = decode_records(_history()).events
    first = fold(None, events[:5], NOW)
    assert first is not None
    again = fold(first.profile, events, NOW)  # 0..4 redelivered, 5..7 new
    assert again is not None
    assert again.profile.event_count == 8 and again.profile.orders == 2
    assert [p.offset for p in again.folded] == [5, 6, 7]
    assert fold(again.profile, events, NOW) is None


def test_late_identify_does_not_overwrite_newer_traits() -> None:
    records = [
        record(event("identify", traits={"plan": "gold"}, ts="2026-11-20T12:00:00Z"), 0),
        record(event("identify", traits={"plan": "free", "city": "Oslo"}, ts="2026-11-20T08:00:00Z"), 1),
    ]
    folded = fold(None, decode_records(records).events, NOW)
    assert folded is not None and folded.profile.traits == {"plan": "gold", "city": "Oslo"}


def test_invalid_records_become_dead_letters() -> None:
    decoded = decode_records(
        [record(b"{not json", 0), record({"type": "track", "userId": "u"}, 1), record(event("page"), 2)]
    )
    assert [d.reason for d in decoded.dead_letters] == ["undecodable", "invalid_event"]
    assert decoded.dead_letters[1].offset == 1 and decoded.dead_letters[1].source == "aggregator"
    assert len(decoded.events) == 1


def test_batch_gives_rows_and_one_change_per_customer() -> None:
    records = [*_history(), record(event("page", customer="u2"), 0, partition=1)]
    assert len(split(records)[2].rows) == 9
    result = fold_records(records)
    assert sorted(c.customer_id for c in result.changes) == ["u1", "u2"]
    u1 = next(c for c in result.changes if c.customer_id == "u1")
    assert [t.type for t in u1.triggers][:2] == ["identify", "page"]
    assert u1.triggers[2].event == "Order Completed" and u1.triggers[2].properties["order_id"] == "o1"
    assert len(result.profile_rows) == 2


def test_redelivered_batch_writes_no_profile_but_emits_the_change_again() -> None:
    first = fold_records(_history())
    current = {c.customer_id: c.profile for c in first.changes}
    again = fold_records(_history(), current)
    assert again.profile_rows == []
    [change] = again.changes
    assert change.changed == [] and change.profile == current["u1"]
    assert [t.message_id for t in change.triggers] == [t.message_id for t in first.changes[0].triggers]


def test_dedup_token_is_deterministic_per_span() -> None:
    records = _history()
    assert dedup_token(records) == dedup_token(list(reversed(records)))
    assert dedup_token(records) != dedup_token(records[:-1])


def test_folding_keeps_what_computed_traits_need_and_computes_them() -> None:
    folded = fold(None, decode_records(_history()).events, NOW)
    assert folded is not None
    p = folded.profile
    assert p.first_order_at == datetime(2026, 11, 20, 10, 2, tzinfo=UTC)
    assert p.last_order_at == datetime(2026, 11, 20, 10, 3, tzinfo=UTC)
    assert p.last_active_at == datetime(2026, 11, 20, 10, 6, tzinfo=UTC)  # the NPS answer; identify is not activity
    assert p.nps_previous == 9  # the older answer, arrived late, becomes the previous one
    assert p.engagement_raw > 0 and p.engagement_at == p.last_active_at
    computed = p.computed
    assert computed is not None and computed.as_of == NOW
    assert (computed.rfm_recency, computed.rfm_frequency, computed.rfm_monetary) == (5, 2, 1)
    # The late NPS answer (09:00) is a visit an hour before the others: a typical interval of an
    # hour, and 1.6 days idle since, is a high churn risk (whatever order the events came in).
    assert (computed.nps_category, computed.nps_trend, computed.lifecycle_stage) == ("detractor", "down", "at_risk")
    assert p.typical_interval_days == pytest.approx(1 / 24)
    assert (computed.loyalty_points, computed.loyalty_tier) == (0, "bronze")  # the ledger's (none reported)
    assert "computed.lifecycle_stage" in folded.changed and "computed" not in folded.changed


def test_the_ledgers_balance_is_the_profiles_and_only_changed_traits_are_reported() -> None:
    order = {"order_id": "o1", "total": 600}
    first = fold(None, decode_records([record(event(event="Order Completed", properties=order), 0)]).events, NOW)
    assert first is not None and first.profile.computed is not None
    assert first.profile.computed.loyalty_points == 0, "revenue alone is not the balance: the ledger says it"
    awarded = {"points": 600, "balance": 600, "tier": "silver", "reason": "order o1"}
    ledger = record(event(event="Loyalty Points Awarded", properties=awarded, messageId="ecrm-interaction-l1"), 1)
    second = fold(first.profile, decode_records([ledger]).events, NOW)
    assert second is not None and second.profile.computed is not None
    assert (second.profile.computed.loyalty_points, second.profile.computed.loyalty_tier) == (600, "silver")
    assert "computed.loyalty_tier" in second.changed and "computed.lifecycle_stage" not in second.changed
    refund = record(event(event="Order Refunded", properties={"order_id": "o1", "total": 200}), 2)
    taken = {"points": -200, "balance": 400, "tier": "bronze", "reason": "refund of order o1"}
    back = record(event(event="Loyalty Points Awarded", properties=taken, messageId="ecrm-interaction-l2"), 3)
    third = fold(second.profile, decode_records([refund, back]).events, NOW)
    assert third is not None and third.profile.computed is not None
    assert (third.profile.refunded, third.profile.computed.loyalty_points) == (Decimal(200), 400)
    assert third.profile.computed.loyalty_tier == "bronze"
    review = fold(third.profile, decode_records([record(event("page"), 4)]).events, NOW)
    assert review is not None and review.profile.computed.loyalty_points == 400  # carried over


def test_stored_events_are_not_inserted_again_and_client_retries_are_not_folded() -> None:
    records = _history()
    first, second = plan_batch(records).message_ids[:2]
    retried = record(event("page", ts="2026-11-20T10:01:00Z"), 9)  # same message id as offset 1, sent again
    plan, _, fresh = split([*records, retried], stored={first: (0, 0), second: (3, 99)})
    assert [row[0] for row in fresh.rows] == plan.message_ids[2:8]
    assert [p.offset for p in fresh.to_fold] == [0, 2, 3, 4, 5, 6, 7]  # offset 1 came from elsewhere, 9 repeats it
    assert fresh.settled == set()  # the last event (9) is a retry: the partition stays looked up


def test_a_retry_is_recognised_by_the_profile_without_a_look_up() -> None:
    first = fold_records(_history())
    profile = first.changes[0].profile
    assert profile.recent_message_ids == plan_batch(_history()).message_ids
    retried = record(event("page", ts="2026-11-20T10:01:00Z"), 20)  # offset 1's message id, at a new position
    new = record(event("page", ts="2026-11-21T10:01:00Z"), 21)
    _, _, fresh = split([retried, new], {"u1": profile})
    assert [p.offset for p in fresh.to_fold] == [21] and len(fresh.rows) == 1


def test_a_profile_keeps_only_its_latest_message_ids() -> None:
    pages = [record(event("page", messageId=f"p{i}"), i) for i in range(RECENT_MESSAGE_IDS + 10)]
    profile = fold_records(pages).changes[0].profile
    assert profile.recent_message_ids == [f"p{i}" for i in range(10, RECENT_MESSAGE_IDS + 10)]


def test_a_looked_up_partition_is_settled_once_its_last_event_is_new() -> None:
    records = _history()
    ids = plan_batch(records).message_ids
    # A batch that died after storing offsets 0..3 without their profiles, redelivered with more.
    _, _, fresh = split(records, stored={ids[i]: (0, i) for i in range(4)})
    assert [row[0] for row in fresh.rows] == ids[4:] and len(fresh.to_fold) == 8
    assert fresh.settled == {0}
    # A shorter redelivery ending inside what the dead batch stored: not settled yet.
    _, _, fresh = split(records[:3], stored={ids[i]: (0, i) for i in range(4)})
    assert fresh.rows == [] and fresh.settled == set()


def test_redelivery_is_recognised_per_partition() -> None:
    first = fold_records([record(event("page", customer="u"), 5, partition=1)])
    profile = first.changes[0].profile
    again = fold_records(
        [
            record(event("page", customer="u"), 5, partition=1),
            record(event("page", customer="u", messageId="p2"), 3, partition=2),
        ],
        {"u": profile},
    )
    [change] = again.changes
    assert change.profile.page_views == 2 and change.profile.positions == {1: 5, 2: 3}
    assert [t.message_id for t in change.triggers] == ["p2"]


def test_events_of_erased_identities_already_on_their_way_are_not_stored() -> None:
    suppressions = SuppressionList()
    suppressions.suppress(["gone", "gone-anon"])
    records = [
        record(event(customer="gone", event="Order Completed", properties={"order_id": "o1", "total": 5}), 10),
        record(event("page", customer="kept", anonymousId="gone-anon"), 11),
        record(event("alias", customer="other", previousId="gone-anon"), 12),
        record(event(customer="kept", event="Product Viewed", properties={"product_id": "p"}), 13),
    ]
    plan = plan_batch(records, suppressions)
    assert [p.event.userId for p in plan.decoded.events] == ["kept"]
    assert plan.decoded.suppressed == 3
    assert plan.spans == {0: (10, 13)}, "the dropped records' offsets are still committed"
    assert len(plan_batch(records).decoded.events) == 4
