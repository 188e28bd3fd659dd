"""Page and screen calls keep their ``name`` and ``category`` (issue 16, #15): as columns of the
events, counted in the profile, and usable in segments, against the real ClickHouse engine."""

from datetime import UTC, datetime, timedelta

import pytest
from aggregator_factories import event, record

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.pipeline import plan_batch
from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_schemas.segments import SegmentDefinition

pytestmark = pytest.mark.clickhouse


def _ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def _calls() -> list:
    node_sdk = event("page", name="Pricing", category="Docs", properties={"path": "/pricing"}, ts=_ago(hours=3),
                     messageId="p1")  # fmt: skip
    analytics_js = event("page", name="Pricing", category="Docs", ts=_ago(hours=2), messageId="p2",
                         properties={"name": "Pricing", "category": "Docs", "path": "/pricing"})  # fmt: skip
    only_in_properties = event("page", properties={"name": "Home"}, ts=_ago(hours=1), messageId="p3")
    mobile = event("screen", name="Cart", category="Checkout", ts=_ago(minutes=30), messageId="s1")
    return [record(b, i) for i, b in enumerate((node_sdk, analytics_js, only_in_properties, mobile))]


def test_page_and_screen_names_and_categories_reach_clickhouse_and_the_profile(store) -> None:
    registry = SegmentRegistry()
    registry.put(SegmentDefinition.model_validate({
        "id": "pricing-readers", "name": "Read pricing twice",
        "condition": {"kind": "all", "conditions": [
            {"kind": "trait", "trait": "page_views_by_name.Pricing", "op": "gte", "value": 2},
            {"kind": "event", "event": "page", "where": {"name": "Pricing", "category": "Docs"}, "within_days": 7,
             "op": "gte", "count": 2},
            {"kind": "trait", "trait": "screen_views_by_name.Cart", "op": "eq", "value": 1}]},
    }))  # fmt: skip
    writer = BatchWriter(store, None, 0.5, registry)
    result = writer.store_batch(plan_batch(_calls()))

    rows = store.client.query(
        f"SELECT message_id, type, name, category FROM {store.database}.customer_events ORDER BY timestamp"
    ).result_rows
    assert rows == [("p1", "page", "Pricing", "Docs"), ("p2", "page", "Pricing", "Docs"), ("p3", "page", "Home", ""),
                    ("s1", "screen", "Cart", "Checkout")]  # fmt: skip
    profile = store.load_profiles(["u1"])["u1"]
    assert (profile.page_views, profile.screen_views) == (3, 1)
    assert profile.page_views_by_name == {"Pricing": 2, "Home": 1}
    assert profile.page_views_by_category == {"Docs": 2}
    assert (profile.screen_views_by_name, profile.screen_views_by_category) == ({"Cart": 1}, {"Checkout": 1})
    assert [(e.type, e.segment_id) for e in result.membership.events] == [("segment.entered", "pricing-readers")]

    [replayed] = [p.event for p in store.load_history(["u1"]) if p.event.messageId == "p1"]
    assert (replayed.name, replayed.category) == ("Pricing", "Docs")  # a recomputed profile counts them too


@pytest.mark.parametrize("op", ["gte", "in"])
def test_every_field_a_definition_may_name_runs_in_clickhouse(store, op) -> None:
    """What validation lets through must run: a definition the API accepts never fails in the
    aggregator's query (times in any ISO form pydantic takes, numbers, text)."""
    from ecrm_schemas.profile_paths import COUNT_FIELDS, PROFILE_FIELDS
    from ecrm_schemas.segment_sql import membership_query

    writer = BatchWriter(store, None, 0.5)
    writer.store_batch(plan_batch(_calls()))
    samples = {"time": "2026-01-01T00:00:00Z", "number": 1, "text": "x"}
    traits = {**{t: samples[k] for t, k in PROFILE_FIELDS.items()}, **{f"{c}.Pricing": 1 for c in COUNT_FIELDS}}
    traits["last_seen"] = "2026-01-01"  # a date alone
    traits["first_seen"] = 1_700_000_000  # epoch seconds
    definitions = [
        SegmentDefinition.model_validate({"id": f"s{i}", "name": trait, "condition": {
            "kind": "trait", "trait": trait, "op": op, "value": [value] if op == "in" else value}})
        for i, (trait, value) in enumerate(sorted(traits.items()))
    ]  # fmt: skip
    query = membership_query(store.database, definitions, ["u1"], {})
    assert set(store.segment_members(query, datetime.now(UTC))) == {"u1"}
