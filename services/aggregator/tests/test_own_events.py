"""The interaction service's own events reach the profile change's trigger marked by the
producer header, and only by it (:mod:`ecrm_schemas.own_events`)."""

from dataclasses import replace
from datetime import UTC, datetime

from aggregator_factories import event, record

from ecrm_aggregator.decode import decode_records, forward_headers, parse_origin
from ecrm_aggregator.pipeline import fold_batch, trigger_of
from ecrm_schemas.own_events import PRODUCER_HEADER, EventOrigin, origin_of_headers, own_event_headers
from ecrm_schemas.profile import ProfileChanged
from ecrm_schemas.topics import ORIGIN_HEADER

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_only_the_exact_producer_header_marks_an_own_event() -> None:
    assert origin_of_headers(own_event_headers()) is EventOrigin.INTERACTION
    assert origin_of_headers(dict(own_event_headers())) is EventOrigin.INTERACTION  # faust gives a mapping
    assert origin_of_headers(None) is EventOrigin.CLIENT
    assert origin_of_headers([("ecrm-origin", b"3:12")]) is EventOrigin.CLIENT
    assert origin_of_headers([(PRODUCER_HEADER, b"collector")]) is EventOrigin.CLIENT
    assert origin_of_headers([(PRODUCER_HEADER, None)]) is EventOrigin.CLIENT


def test_the_trigger_says_who_produced_the_event_from_the_header_never_from_the_event() -> None:
    sent = event(event="Email Sent", properties={"email_id": "a1"}, messageId="ecrm-interaction-a1-sent")
    own = replace(record(sent, 0), event_origin=EventOrigin.INTERACTION)
    # A client's event with the service's message-id prefix and fields claiming the mark.
    forged = event(event="Unsubscribed", messageId="ecrm-interaction-unsubscribe-u1", origin="interaction",
                   context={"ecrm_producer": "interaction"})  # fmt: skip
    events = decode_records([own, record(forged, 1)]).events
    assert [p.event_origin for p in events] == [EventOrigin.INTERACTION, EventOrigin.CLIENT]
    assert [trigger_of(p).origin for p in events] == [EventOrigin.INTERACTION, EventOrigin.CLIENT]

    [change] = fold_batch({"u1": events}, {}, NOW).changes
    decoded = ProfileChanged.model_validate_json(change.encode())
    assert [(t.message_id, t.origin) for t in decoded.triggers] == [
        ("ecrm-interaction-a1-sent", EventOrigin.INTERACTION),
        ("ecrm-interaction-unsubscribe-u1", EventOrigin.CLIENT),
    ]


def test_a_forwarded_event_keeps_its_producer() -> None:
    sent = event(event="Email Sent", properties={"email_id": "a1"}, messageId="ecrm-interaction-a1-sent")
    [own, client] = decode_records([replace(record(sent, 40, 2), event_origin=EventOrigin.INTERACTION),
                                    record(event("page"), 41, 2)]).events  # fmt: skip
    assert (parse_origin(dict(forward_headers(own))[ORIGIN_HEADER]), origin_of_headers(forward_headers(own))) == (
        (2, 40), EventOrigin.INTERACTION)  # fmt: skip
    assert origin_of_headers(forward_headers(client)) is EventOrigin.CLIENT
    # ... and the worker that reads it back from the stitched topic:
    forwarded = replace(record(sent, 7), origin=(2, 40), event_origin=EventOrigin.INTERACTION)
    [positioned] = decode_records([forwarded]).events
    assert (positioned.partition, positioned.offset, positioned.forwarded) == (2, 40, True)
    assert positioned.event_origin is EventOrigin.INTERACTION
