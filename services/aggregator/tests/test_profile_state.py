"""The aggregator's working profile against the contract other services read."""

from datetime import UTC, datetime

from test_pipeline import NOW, _history, fold_records

from ecrm_aggregator.profile_state import CONTRACT_FIELDS, TRAIT_FIELDS, ProfileState
from ecrm_schemas.profile import ComputedTraits, CustomerProfile, ProfileChanged


def test_the_working_profile_has_exactly_the_contracts_fields() -> None:
    assert set(CONTRACT_FIELDS) == set(CustomerProfile.model_fields), (
        "ProfileState and ecrm_schemas.profile.CustomerProfile must list the same fields: "
        "add the field to both (and to rows.PROFILE_COLUMNS with a migration)"
    )
    assert set(TRAIT_FIELDS) == set(ComputedTraits.model_fields)


def test_a_change_encodes_as_the_contracts_profile_changed() -> None:
    [change] = fold_records(_history()).changes
    decoded = ProfileChanged.model_validate_json(change.encode())
    assert decoded.customer_id == "u1" and decoded.emitted_at == NOW
    assert decoded.profile == change.profile.to_model()
    assert decoded.profile.revenue == change.profile.revenue and decoded.profile.positions == {0: 7}
    assert decoded.profile.computed is not None and decoded.profile.computed.lifecycle_stage == "at_risk"
    assert [t.message_id for t in decoded.triggers] == [t.message_id for t in change.triggers]
    assert decoded.triggers[2].properties == {"order_id": "o1", "total": 20.5}
    assert "recent_message_ids" not in change.encode().decode()  # internal, not part of the contract
    assert "activity_slots" not in change.encode().decode()


def test_a_contract_profile_round_trips_through_the_working_profile() -> None:
    [change] = fold_records(_history()).changes
    model = change.profile.to_model()
    again = ProfileState.from_model(model, change.profile.recent_message_ids, change.profile.activity_slots)
    assert again == change.profile
    assert again.first_seen == datetime(2026, 11, 20, 9, tzinfo=UTC)


def test_a_change_says_what_each_changed_scalar_held_before() -> None:
    [first] = fold_records(_history()[:2]).changes  # identify, page
    [second] = fold_records(_history()[2:3], {"u1": first.profile}).changes  # an order
    decoded = ProfileChanged.model_validate_json(second.encode())
    assert decoded.previous["orders"] == 0 and decoded.profile.orders == 1
    assert decoded.previous["computed.lifecycle_stage"] == "prospect"
    assert decoded.profile.computed is not None and decoded.profile.computed.lifecycle_stage == "new"
    assert "event_counts" in decoded.changed and "event_counts" not in decoded.previous  # containers left out
