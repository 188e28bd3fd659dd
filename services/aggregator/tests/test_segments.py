"""Segment definitions as SQL, membership changes, and the registry (pure)."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ecrm_aggregator.rows import COMPUTED_COLUMNS, PROFILE_COLUMNS
from ecrm_aggregator.segmentation import SegmentRegistry, membership_changes
from ecrm_schemas.conditions import TraitCondition
from ecrm_schemas.profile_paths import COUNT_FIELDS, PROFILE_FIELDS
from ecrm_schemas.segment_sql import UnknownTrait, membership_query
from ecrm_schemas.segments import SegmentDefinition, explain

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def hesitant(product: str = "p1") -> SegmentDefinition:
    return SegmentDefinition.model_validate({
        "id": "hesitant", "name": "Hesitant", "condition": {"kind": "all", "conditions": [
            {"kind": "event", "event": "Product Viewed", "where": {"product_id": product}, "within_days": 7,
             "op": "gte", "count": 3},
            {"kind": "event", "event": "Order Completed", "within_days": 7, "op": "eq", "count": 0}]},
    })  # fmt: skip


def detractors() -> SegmentDefinition:
    return SegmentDefinition.model_validate({
        "id": "detractors", "name": "NPS detractors",
        "condition": {"kind": "trait", "trait": "computed.nps_category", "op": "eq", "value": "detractor"},
    })  # fmt: skip


def test_marketers_values_travel_as_parameters_never_as_sql() -> None:
    sneaky = hesitant(product="p1' OR 1=1 --")
    query = membership_query("ecrm", [sneaky, detractors()], ["u1"], {"a1": "u1"})
    assert "OR 1=1" not in query.sql and "detractor" not in query.sql
    assert "p1' OR 1=1 --" in query.parameters.values() and "detractor" in query.parameters.values()
    assert query.segment_ids == ["hesitant", "detractors"]
    assert "customer_events" not in query.sql  # a batch reads events by their sort key
    assert "customer_events" in membership_query("ecrm", [sneaky], partitions=[0, 1]).sql


def test_unknown_profile_fields_and_bad_definitions_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown_profile_field"):
        SegmentDefinition.model_validate(
            {"id": "x", "name": "x", "condition": {"kind": "trait", "trait": "no_such_field", "op": "exists"}}
        )
    # One built around the validation (model_construct) still cannot become SQL.
    bad = SegmentDefinition.model_construct(
        id="x", name="x", condition=TraitCondition.model_construct(kind="trait", trait="no_such_field", op="exists")
    )
    with pytest.raises(UnknownTrait, match="no_such_field"):
        membership_query("ecrm", [bad], ["u1"], {})
    with pytest.raises(ValidationError):
        SegmentDefinition.model_validate({"id": "Bad Id!", "name": "x", "condition": {"kind": "all", "conditions": []}})
    with pytest.raises(ValueError, match="no segment"):
        membership_query("ecrm", [], ["u1"], {})


def test_every_field_a_condition_may_name_is_a_profile_column_the_query_can_read() -> None:
    """The definitions' field list is derived from the profile contract; this keeps it equal to
    what the aggregator stores (a field valid for the API but unknown to ClickHouse would stop
    the aggregator)."""
    columns = set(PROFILE_COLUMNS)
    for trait in PROFILE_FIELDS:
        assert trait.removeprefix("computed.") in columns, trait
        value = "2026-01-01T00:00:00Z" if PROFILE_FIELDS[trait] == "time" else 1
        definition = SegmentDefinition.model_validate(
            {"id": "x", "name": "x", "condition": {"kind": "trait", "trait": trait, "op": "gte", "value": value}}
        )
        membership_query("ecrm", [definition], ["u1"], {})
    assert columns >= COUNT_FIELDS
    assert set(COMPUTED_COLUMNS) == {t.removeprefix("computed.") for t in PROFILE_FIELDS if t.startswith("computed.")}


def test_explain_reads_like_the_definition() -> None:
    assert explain(hesitant().condition) == (
        "(Product Viewed with product_id = 'p1' ≥ 3 times in 7 days and Order Completed = 0 times in 7 days)"
    )


def test_enter_and_exit_with_reasons_and_deterministic_ids() -> None:
    definitions = [hesitant(), detractors()]
    update = membership_changes(
        definitions, {"u1": {"hesitant"}, "u2": set()}, {"u2": {"detractors"}}, NOW, "event", "batch-1",
        {"u1": ["m1", "m2"]},
    )  # fmt: skip
    assert [(e.type, e.customer_id, e.segment_id) for e in update.events] == [
        ("segment.entered", "u1", "hesitant"), ("segment.exited", "u2", "detractors")]  # fmt: skip
    entered, exited = update.events
    assert entered.trigger_message_ids == ["m1", "m2"] and "Product Viewed" in entered.reason
    assert exited.reason.startswith("no longer computed.nps_category")
    assert update.rows[0][:3] == ["hesitant", "u1", 1] and update.rows[1][:3] == ["detractors", "u2", 0]
    again = membership_changes(definitions, {"u1": {"hesitant"}, "u2": set()}, {"u2": {"detractors"}}, NOW, "event",
                               "batch-1", {"u1": ["m1", "m2"]})  # fmt: skip
    assert [e.event_id for e in again.events] == [e.event_id for e in update.events]


def test_members_leave_deleted_segments_and_merged_profiles() -> None:
    update = membership_changes([detractors()], {}, {"a1": {"detractors"}, "u1": {"gone"}}, NOW, "timer", "tick")
    assert {(e.customer_id, e.segment_id, e.reason) for e in update.events} == {
        ("a1", "detractors", "the profile was merged into another customer"),
        ("u1", "gone", "the segment was deleted"),
    }


def test_the_registry_reports_what_changed_once() -> None:
    registry = SegmentRegistry()
    registry.put(hesitant())
    registry.put(hesitant())
    registry.put(detractors())
    assert registry.take_changed() == {"hesitant", "detractors"} and registry.take_changed() == set()
    registry.delete("hesitant")
    registry.delete("never-defined")
    assert registry.take_changed() == {"hesitant"} and [d.id for d in registry.current()] == ["detractors"]
