"""Segments and the timer against the real ClickHouse engine: enter and exit on events, exit
when a window passes, time-based traits, deleted segments, and membership as data teams see it."""

from datetime import UTC, datetime, timedelta

import pytest
from aggregator_factories import event, record
from test_segments import detractors, hesitant

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.pipeline import plan_batch
from ecrm_aggregator.segmentation import SegmentRegistry

pytestmark = pytest.mark.clickhouse


def _ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def _view(offset: int, customer: str = "u1", product: str = "p1"):
    body = event(event="Product Viewed", customer=customer, properties={"product_id": product},
                 ts=_ago(hours=10 - offset), messageId=f"view-{customer}-{offset}")  # fmt: skip
    return record(body, offset)


def _members(store):
    return store.client.query(
        f"SELECT segment_id, customer_id FROM {store.database}.segment_members ORDER BY 1, 2"
    ).result_rows


def _history(store):
    return store.client.query(
        f"SELECT segment_id, customer_id, change, trigger FROM {store.database}.segment_changes ORDER BY at, change"
    ).result_rows


def _writer(store, *definitions) -> BatchWriter:
    registry = SegmentRegistry()
    for definition in definitions:
        registry.put(definition)
    return BatchWriter(store, None, 0.5, registry, traits_refresh_s=3600)


def test_customers_enter_on_events_and_exit_on_events(store) -> None:
    writer = _writer(store, hesitant(), detractors())
    result = writer.store_batch(plan_batch([_view(0), _view(1)]))
    assert result.membership.events == []
    result = writer.store_batch(plan_batch([_view(2), _view(0, customer="u2")]))
    [entered] = result.membership.events
    assert (entered.type, entered.customer_id, entered.segment_id, entered.trigger) == (
        "segment.entered", "u1", "hesitant", "event")  # fmt: skip
    assert entered.trigger_message_ids == ["view-u1-2"]
    store.insert_membership(result.membership, "t1")
    assert _members(store) == [("hesitant", "u1")]

    order = event(event="Order Completed", properties={"order_id": "o1", "total": 5}, ts=_ago(hours=1),
                  messageId="order-1")  # fmt: skip
    nps = event(event="NPS Answered", properties={"survey_id": "s", "score": 2}, ts=_ago(minutes=30),
                messageId="nps-1")  # fmt: skip
    result = writer.store_batch(plan_batch([record(order, 3), record(nps, 4)]))
    assert {(e.type, e.segment_id) for e in result.membership.events} == {
        ("segment.exited", "hesitant"), ("segment.entered", "detractors")}  # fmt: skip
    store.insert_membership(result.membership, "t2")
    assert _members(store) == [("detractors", "u1")]
    assert [row[2] for row in _history(store) if row[0] == "hesitant"] == ["entered", "exited"]


def test_the_timer_sees_windows_pass_and_traits_age_and_deleted_segments(store) -> None:
    writer = _writer(store, hesitant(), detractors())
    result = writer.store_batch(plan_batch([_view(0), _view(1), _view(2)]))
    store.insert_membership(result.membership, "t1")
    assert _members(store) == [("hesitant", "u1")]
    profile = store.load_profiles(["u1"])["u1"]
    assert profile.computed is not None and profile.computed.lifecycle_stage == "prospect"

    writer.tick([0, 1, 2])  # nothing has aged yet
    assert _members(store) == [("hesitant", "u1")]
    assert store.load_profiles(["u1"])["u1"].version == profile.version  # traits fresh: not rewritten

    later = datetime.now(UTC) + timedelta(days=8)
    writer.tick([1, 2], later)  # another worker's partitions: u1 was folded from partition 0
    assert _members(store) == [("hesitant", "u1")]
    writer.tick([0], later)
    assert _members(store) == [] and _history(store)[-1] == ("hesitant", "u1", "exited", "timer")
    reviewed = store.load_profiles(["u1"])["u1"]
    assert reviewed.version == profile.version + 1 and reviewed.computed is not None
    assert reviewed.computed.as_of == later.replace(microsecond=later.microsecond // 1000 * 1000)
    assert reviewed.computed.engagement_score < profile.computed.engagement_score  # decayed with time

    nps = event(event="NPS Answered", properties={"survey_id": "s", "score": 1}, ts=_ago(minutes=5), messageId="n")
    store.insert_membership(writer.store_batch(plan_batch([record(nps, 3)])).membership, "t2")
    assert _members(store) == [("detractors", "u1")]
    writer.segments.delete("detractors")
    writer.tick([0])
    assert _members(store) == []
    assert [row for row in _history(store) if row[0] == "detractors"][-1] == (
        "detractors",
        "u1",
        "exited",
        "definition",
    )
    deleted = store.client.query(
        f"SELECT segment_id, deleted FROM {store.database}.segment_definitions FINAL ORDER BY 1"
    ).result_rows
    assert deleted == [("detractors", 1), ("hesitant", 0)]
