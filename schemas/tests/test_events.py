import json
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter

from ecrm_schemas.events import AliasEvent, IdentifyEvent, TrackEvent, decode_event, encode_event, event_label
from ecrm_schemas.topics import ALL_TOPICS, TOPICS_BY_NAME
from ecrm_schemas.validation import InvalidEvent, validate_event

EXAMPLES = Path(__file__).resolve().parent.parent / "ecrm_schemas" / "examples"


def _value_adapter(dotted: str) -> TypeAdapter:
    module_name, _, attr = dotted.rpartition(".")
    module = __import__(module_name, fromlist=[attr])
    return TypeAdapter(getattr(module, attr))


def _stamped(**fields):
    base = {"messageId": "m-1", "timestamp": "2026-11-20T09:00:00Z", "receivedAt": "2026-11-20T09:00:01Z"}
    return base | fields


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_validates_against_its_topic(path: Path) -> None:
    topic = TOPICS_BY_NAME[path.parent.name]
    raw = json.loads(path.read_text())
    if topic.value == "ecrm_schemas.events.Event":
        validate_event(raw)
    else:
        _value_adapter(topic.value).validate_python(raw)


def test_every_topic_has_examples() -> None:
    with_examples = {p.name for p in EXAMPLES.iterdir() if any(p.glob("*.json"))}
    missing = {t.name for t in ALL_TOPICS} - with_examples
    assert not missing, f"topics without example messages in {EXAMPLES}: {sorted(missing)}"


def test_track_round_trips_through_wire_json() -> None:
    event = validate_event(_stamped(type="track", event="Signed Up", userId="u1", properties={"plan": "pro"}))
    assert isinstance(event, TrackEvent)
    again = decode_event(encode_event(event))
    assert again == event
    assert event_label(again) == "Signed Up"
    assert again.customer_key == "u1"


def test_identify_keyed_by_user_then_anonymous_id() -> None:
    event = validate_event(_stamped(type="identify", anonymousId="a1", traits={"email": "x@example.com"}))
    assert isinstance(event, IdentifyEvent)
    assert event.customer_key == "a1"
    assert event_label(event) == "identify"


def test_naive_timestamps_are_utc() -> None:
    event = validate_event(_stamped(type="page", userId="u1", timestamp="2026-11-20T09:00:00"))
    assert event.timestamp.utcoffset() is not None and event.timestamp.utcoffset().total_seconds() == 0


def test_someone_is_required() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate_event(_stamped(type="track", event="X"))
    assert [(e.field, e.rule, e.message) for e in info.value.errors] == [
        ("userId", "required_one_of", "userId or anonymousId is required (one of them)")
    ]


def test_errors_name_the_field_and_rule() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate_event(_stamped(type="track", userId="u1", event=""))
    [error] = info.value.errors
    assert (error.field, error.rule) == ("event", "string_too_short")


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate_event(_stamped(type="explode", userId="u1"))
    assert info.value.errors[0].field == "$" or info.value.errors[0].rule == "union_tag_invalid"


def test_missing_type_and_non_object() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate_event(_stamped(userId="u1"))
    assert info.value.errors[0].field == "type"
    with pytest.raises(InvalidEvent) as info:
        validate_event([1, 2])
    assert info.value.errors[0].rule == "dict_type"


def test_catalogued_properties_are_typed() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate_event(
            _stamped(type="track", userId="u1", event="NPS Answered", properties={"survey_id": "s", "score": 11})
        )
    [error] = info.value.errors
    assert (error.field, error.rule) == ("properties.score", "less_than_equal")

    with pytest.raises(InvalidEvent) as info:
        validate_event(_stamped(type="track", userId="u1", event="Order Completed", properties={"order_id": "o1"}))
    assert [(e.field, e.rule) for e in info.value.errors] == [("properties.total", "missing")]


def test_catalogued_properties_are_kept_as_sent() -> None:
    props = {"order_id": "o1", "total": 12.5, "coupon": "WELCOME"}
    event = validate_event(_stamped(type="track", userId="u1", event="Order Completed", properties=props))
    assert event.properties == props


def test_alias_requires_previous_and_user_id() -> None:
    with pytest.raises(InvalidEvent) as info:
        validate_event(_stamped(type="alias", anonymousId="a1", previousId="a0"))
    assert [e.field for e in info.value.errors] == ["userId"]
    event = validate_event(_stamped(type="alias", userId="u1", previousId="a0"))
    assert isinstance(event, AliasEvent)


def test_values_are_models() -> None:
    for topic in ALL_TOPICS:
        adapter = _value_adapter(topic.value)
        assert adapter.json_schema(), topic.name
        assert topic.dead_letter is None or topic.dead_letter in TOPICS_BY_NAME
        assert isinstance(topic.partitions, int) and topic.partitions > 0
    assert issubclass(IdentifyEvent, BaseModel)


def test_a_timestamp_that_leaves_the_calendar_in_utc_is_invalid_not_a_crash() -> None:
    raw = {"type": "page", "userId": "u", "messageId": "m", "receivedAt": "2026-11-20T10:00:00Z",
           "timestamp": "0001-01-01T00:00:00+05:00"}  # fmt: skip
    with pytest.raises(InvalidEvent) as caught:
        validate_event(raw)
    assert caught.value.errors[0].field == "timestamp"


def test_page_and_screen_names_and_categories_survive_validation_and_the_wire() -> None:
    """Issue 16 #15: Segment's libraries send ``name`` and ``category`` at the top level of a page
    or screen call; analytics.js also puts them in ``properties``."""
    from ecrm_schemas.events import decode_event, encode_event, view_category, view_name
    from ecrm_schemas.validation import validate_event

    base = {"messageId": "m", "userId": "u", "timestamp": "2026-11-20T10:00:00Z", "receivedAt": "2026-11-20T10:00:00Z"}
    node = validate_event(base | {"type": "page", "name": "Pricing", "category": "Docs"})
    again = decode_event(encode_event(node))
    assert (view_name(again), view_category(again)) == ("Pricing", "Docs")
    browser = validate_event(base | {"type": "page", "properties": {"name": "Home", "category": "Landing"}})
    assert (view_name(browser), view_category(browser)) == ("Home", "Landing")
    mobile = validate_event(base | {"type": "screen", "name": "Cart"})
    assert (view_name(mobile), view_category(mobile)) == ("Cart", None)
    track = validate_event(base | {"type": "track", "event": "X", "properties": {"name": "not a page"}})
    assert view_name(track) is None
