from datetime import UTC, datetime

import orjson

from ecrm_collector.ingest import plan_ingest
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import decode_event
from ecrm_schemas.suppressions import SuppressionList

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def _plan(events, **kwargs):
    return plan_ingest(events, received_at=NOW, source="test", max_event_bytes=32 * 1024, **kwargs)


def test_valid_events_become_keyed_records() -> None:
    plan = _plan([{"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}}])
    assert not plan.rejected
    [record] = plan.accepted
    assert record.key == b"u1"
    event = decode_event(record.value)
    assert event.type == "identify" and event.receivedAt == NOW


def test_invalid_events_become_dead_letters_with_reason() -> None:
    raw = {"type": "track", "userId": "u1", "event": "NPS Answered", "properties": {"survey_id": "s", "score": 42}}
    plan = _plan([raw, {"type": "page", "anonymousId": "a1"}])
    assert len(plan.accepted) == 1
    [rejection] = plan.rejected
    assert rejection.index == 0
    assert [(e.field, e.rule) for e in rejection.errors] == [("properties.score", "less_than_equal")]
    letter = DeadLetter.model_validate_json(rejection.dead_letter.value)
    assert letter.reason == "invalid_event" and letter.source == "test"
    assert orjson.loads(letter.raw_payload()) == raw
    assert rejection.dead_letter.key == b"u1"


def test_oversized_event_is_rejected() -> None:
    raw = {"type": "track", "userId": "u1", "event": "Big", "properties": {"blob": "x" * 40_000}}
    plan = _plan([raw])
    assert not plan.accepted
    assert plan.rejected[0].errors[0].rule == "too_large"


def test_batch_defaults_fill_context_and_sent_at() -> None:
    defaults = {"context": {"library": {"name": "sdk"}, "locale": "fr-FR"}, "sentAt": "2026-11-20T12:00:00Z"}
    raw = {
        "type": "track",
        "userId": "u1",
        "event": "X",
        "context": {"locale": "en-GB"},
        "timestamp": "2026-11-20T11:59:00Z",
    }
    [record] = _plan([raw], batch_defaults=defaults).accepted
    event = decode_event(record.value)
    assert event.context.locale == "en-GB"
    assert event.context.library == {"name": "sdk"}
    assert event.sentAt is not None


def test_non_object_in_batch_is_rejected_by_index() -> None:
    plan = _plan([{"type": "page", "userId": "u1"}, 7])
    assert [r.index for r in plan.rejected] == [1]
    assert plan.rejected[0].dead_letter.key is None


def test_browser_sources_cannot_send_back_end_events() -> None:
    order = {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"order_id": "o", "total": 1}}
    view = {"type": "track", "userId": "u1", "event": "Product Viewed", "properties": {"product_id": "p"}}
    plan = _plan([order, view], sender_kind="browser")
    assert [(r.index, r.errors[0].field, r.errors[0].rule) for r in plan.rejected] == [(0, "event", "server_only")]
    assert len(plan.accepted) == 1
    assert not _plan([order]).rejected


def _nested(depth: int) -> dict:
    deep: dict = {}
    inner = deep
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    return deep


def test_deeply_nested_events_are_rejected_and_dead_lettered_whole() -> None:
    # orjson writes at most 255 levels: such an event raised instead of being refused (a 500).
    plan = _plan([{"type": "track", "event": "X", "userId": "u1", "properties": _nested(d)} for d in (20, 600, 1000)])
    assert len(plan.accepted) == 1
    assert [(r.index, [e.rule for e in r.errors]) for r in plan.rejected] == [(1, ["too_deep"]), (2, ["too_deep"])]
    letter = DeadLetter.model_validate_json(plan.rejected[1].dead_letter.value)
    assert letter.payload.count('{"a"') == 1000 and plan.rejected[1].dead_letter.key == b"u1"


def test_events_of_erased_identities_are_dropped_before_anything_else() -> None:
    suppressions = SuppressionList()
    suppressions.suppress(["gone-user", "gone-anon"])
    events = [
        {"type": "identify", "userId": "gone-user", "traits": {"email": "gone@example.com"}},
        {"type": "page", "anonymousId": "gone-anon"},
        {"type": "alias", "previousId": "gone-anon", "userId": "new-user"},
        {"type": "track", "userId": "gone-user"},  # invalid (no event name): still no dead letter
        {"type": "page", "anonymousId": "kept-anon"},
    ]
    plan = _plan(events, suppressions=suppressions)
    assert plan.suppressed == 4
    assert [r.key for r in plan.accepted] == [b"kept-anon"]
    assert plan.rejected == []
    unsuppressed = _plan(events)
    assert (len(unsuppressed.accepted), len(unsuppressed.rejected), unsuppressed.suppressed) == (4, 1, 0)


CONTACT_STATE = [
    {"event": "Email Bounced", "properties": {"email_id": "m1", "bounce_type": "hard"}},
    {"event": "Email Marked as Spam", "properties": {"email_id": "m1"}},
    {"event": "Unsubscribed", "properties": {}},
    {"event": " Consent Updated ", "properties": {"channel": "email", "granted": False}},
]


def test_browser_sources_cannot_change_a_customers_contact_state() -> None:
    # A browser key is public: with it anyone could block any customer's mail.
    events = [{"type": "track", "userId": "victim", **e} for e in CONTACT_STATE]
    plan = _plan(events, sender_kind="browser")
    assert plan.accepted == []
    assert [(r.errors[0].field, r.errors[0].rule) for r in plan.rejected] == [("event", "contact_state")] * 4
    assert "server key" in plan.rejected[0].errors[0].message
    letter = DeadLetter.model_validate_json(plan.rejected[0].dead_letter.value)
    assert letter.errors[0].rule == "contact_state" and letter.sender_kind == "browser"
    assert len(_plan(events).accepted) == 4, "server keys may send them"


def test_an_invalid_browser_contact_state_event_is_refused_as_such_not_only_as_invalid() -> None:
    # Refused for its name first: a later replay (after the schema is relaxed) must not accept it.
    bounce = {"type": "track", "userId": "victim", "event": "Email Bounced", "properties": {"bounce_type": "x"}}
    plan = _plan([bounce], sender_kind="browser")
    assert [e.rule for e in plan.rejected[0].errors] == ["contact_state"]


def test_a_browser_key_cannot_take_the_message_id_of_the_pipelines_own_events() -> None:
    # The pipeline deduplicates by messageId: sent first, this id would drop the real unsubscribe report.
    squatted = [{"type": "page", "userId": "victim", "messageId": mid}
                for mid in ("ecrm-interaction-unsubscribe-victim", "sendgrid:evt-1", " ses:abc:0")]  # fmt: skip
    plan = _plan(squatted, sender_kind="browser")
    assert [(r.errors[0].field, r.errors[0].rule) for r in plan.rejected] == [("messageId", "reserved_prefix")] * 3
    assert len(_plan(squatted).accepted) == 3, "a server key (e.g. re-importing exported events) may"


def test_browser_keys_cannot_claim_the_email_channels_own_events() -> None:
    # "Email Link Clicked" earns loyalty points: with a browser key anyone could farm them.
    names = ["Email Sent", "Email Delivered", "Email Opened", "Email Link Clicked"]
    events = [{"type": "track", "userId": "me", "event": name, "properties": {"email_id": "m"}} for name in names]
    plan = _plan(events, sender_kind="browser")
    assert [(r.errors[0].field, r.errors[0].rule) for r in plan.rejected] == [("event", "server_only")] * 4
    assert "tracking links" in plan.rejected[3].errors[0].message
