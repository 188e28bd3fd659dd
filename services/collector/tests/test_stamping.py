from datetime import UTC, datetime

from ecrm_collector.stamping import stamp

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def test_missing_id_and_timestamp_are_filled() -> None:
    event = stamp({"userId": "u1"}, NOW, "track")
    assert event["type"] == "track"
    assert len(event["messageId"]) == 36
    assert event["receivedAt"] == event["timestamp"] == NOW


def test_client_clock_is_corrected_with_sent_at() -> None:
    # The client's clock is 1 hour behind: it says sentAt 11:00 while we receive at 12:00.
    raw = {"timestamp": "2026-11-20T10:59:50Z", "sentAt": "2026-11-20T11:00:00Z", "messageId": "m1"}
    event = stamp(raw, NOW)
    assert event["timestamp"] == datetime(2026, 11, 20, 11, 59, 50, tzinfo=UTC)
    assert event["originalTimestamp"] == "2026-11-20T10:59:50Z"
    assert event["messageId"] == "m1"


def test_without_sent_at_the_timestamp_is_kept() -> None:
    event = stamp({"timestamp": "2026-11-20T10:00:00+01:00"}, NOW)
    assert event["timestamp"] == "2026-11-20T10:00:00+01:00"


def test_unparseable_timestamp_is_left_for_validation() -> None:
    event = stamp({"timestamp": "yesterday"}, NOW)
    assert event["timestamp"] == "yesterday"


def test_input_is_not_mutated() -> None:
    raw = {"userId": "u1"}
    stamp(raw, NOW, "identify")
    assert raw == {"userId": "u1"}


def test_an_absurd_client_clock_does_not_break_stamping() -> None:
    raw = {"type": "track", "sentAt": "4026-01-01T00:00:00Z", "timestamp": "2000-01-01T00:00:00Z"}
    stamped = stamp(raw, datetime(2026, 11, 20, tzinfo=UTC))
    assert stamped["timestamp"] == "2000-01-01T00:00:00Z"
