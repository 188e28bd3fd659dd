"""The event builders: the pipeline's own events are assembled and validated in one place."""

from datetime import UTC, datetime

import pytest

from ecrm_schemas.builders import build_alias, build_track, track_body
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.events import AliasEvent, TrackEvent, decode_event, encode_event
from ecrm_schemas.validation import InvalidEvent

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_a_built_track_event_is_validated_against_the_catalog_and_decodes_back() -> None:
    built = build_track(CatalogEvent.EMAIL_SENT, {"userId": "u1"}, {"email_id": "a1", "rule_id": "welcome"},
                        library="ecrm-interaction", message_id="ecrm-interaction-a1-sent", timestamp=AT)  # fmt: skip
    assert isinstance(built, TrackEvent) and type(built.event) is str and built.event == "Email Sent"
    decoded = decode_event(encode_event(built))
    assert decoded == built
    assert (decoded.timestamp, decoded.context.library) == (AT, {"name": "ecrm-interaction"})
    with pytest.raises(InvalidEvent) as refused:
        build_track(CatalogEvent.EMAIL_SENT, {"userId": "u1"}, {}, library="x", message_id="m", timestamp=AT)
    assert [e.field for e in refused.value.errors] == ["properties.email_id"]


def test_a_track_body_is_what_a_client_would_send() -> None:
    body = track_body(CatalogEvent.EMAIL_OPENED, {"userId": None, "anonymousId": "a-1"}, {"email_id": "e"},
                      library="ecrm-email-tracking", context={"userAgent": "Mail"})  # fmt: skip
    assert body == {
        "type": "track",
        "event": "Email Opened",
        "anonymousId": "a-1",
        "properties": {"email_id": "e"},
        "context": {"userAgent": "Mail", "library": {"name": "ecrm-email-tracking"}},
    }
    assert "messageId" not in body and "timestamp" not in body  # the collector stamps them


def test_a_built_alias_links_the_previous_id() -> None:
    alias = build_alias("email:abc", "u1", library="ecrm-interaction", message_id="ecrm-interaction-a-address",
                        timestamp=AT, received_at=AT)  # fmt: skip
    assert isinstance(alias, AliasEvent) and (alias.previousId, alias.userId, alias.receivedAt) == (
        "email:abc",
        "u1",
        AT,
    )
