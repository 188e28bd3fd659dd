"""The one profile-path grammar: parsing, reading, and the errors at the system's edge."""

import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from ecrm_schemas.conditions import TraitCondition
from ecrm_schemas.profile import ComputedTraits, CustomerProfile
from ecrm_schemas.profile_paths import (
    COUNT_FIELDS,
    LOYALTY_FIELDS,
    PROFILE_FIELDS,
    ProfilePath,
    TriggerPath,
    parse_path,
    read,
)

PROFILE = {
    "orders": 3,
    "traits": {"plan": "gold"},
    "computed": {"churn_risk": "high"},
    "event_counts": {"Order Completed": 3},
    "page_views_by_name": {"Pricing": 2},
}


def test_every_form_of_path_parses_to_its_root_and_kind() -> None:
    assert (parse_path("orders").root, parse_path("orders").kind) == ("field", "number")
    assert (parse_path("computed.churn_risk").root, parse_path("computed.churn_risk").name) == (
        "computed",
        "churn_risk",
    )
    counted = parse_path("event_counts.Order Completed")
    assert (counted.root, counted.name, counted.key, counted.kind) == (
        "counts",
        "event_counts",
        "Order Completed",
        "number",
    )
    assert (parse_path("traits.plan").root, parse_path("traits.plan").key) == ("traits", "plan")
    assert parse_path("loyalty.tier", loyalty=True).root == "loyalty"
    assert parse_path("last_seen").kind == "time"


def test_the_paths_are_derived_from_the_profile_models() -> None:
    assert "computed.churn_risk" in PROFILE_FIELDS and "orders" in PROFILE_FIELDS
    assert {f"computed.{n}" for n in ComputedTraits.model_fields if n != "as_of"} <= set(PROFILE_FIELDS)
    assert {n for n, f in CustomerProfile.model_fields.items() if f.annotation == dict[str, int]} == COUNT_FIELDS
    assert set(LOYALTY_FIELDS) == {"points", "tier"}


def test_read_gives_the_value_or_none_and_zero_for_a_name_never_counted() -> None:
    assert read(PROFILE, "orders") == 3 and read(PROFILE, "traits.plan") == "gold"
    assert read(PROFILE, "computed.churn_risk") == "high" and read(PROFILE, "computed.rfm_segment") is None
    assert read(PROFILE, "event_counts.Order Completed") == 3 and read(PROFILE, "event_counts.Refund") == 0
    assert read(PROFILE, "page_views_by_name.Pricing") == 2
    assert read(PROFILE, "loyalty.points", {"points": 700}) == 700 and read(PROFILE, "loyalty.tier") is None


def test_unknown_paths_are_refused_naming_the_closest_known_one() -> None:
    with pytest.raises(PydanticCustomError, match="did you mean 'orders'"):
        parse_path("orderz")
    with pytest.raises(PydanticCustomError, match=r"no profile field .loyalty\.tier."):
        parse_path("loyalty.tier")  # only trait triggers read the ledger
    with pytest.raises(ValidationError) as refused:
        TraitCondition.model_validate({"trait": "computed.churn", "op": "exists"})
    [error] = refused.value.errors()
    assert (error["loc"], error["type"]) == (("trait",), "unknown_profile_field")
    assert "computed.churn_risk" in error["msg"]
    with pytest.raises(ValidationError, match="invalid_trait_name"):
        TypeAdapter(ProfilePath).validate_python("traits.a/b")


def test_a_trait_trigger_names_a_value_profile_changes_report() -> None:
    triggers = TypeAdapter(TriggerPath)
    assert triggers.validate_python("computed.churn_risk") == "computed.churn_risk"
    assert triggers.validate_python("loyalty.points") == "loyalty.points"
    for inside in ("traits.plan", "event_counts.Order Completed"):
        with pytest.raises(ValidationError, match="unreported_profile_field"):
            triggers.validate_python(inside)
    with pytest.raises(ValidationError, match=r"did you mean .computed\.engagement_score."):
        triggers.validate_python("engagement_score")
