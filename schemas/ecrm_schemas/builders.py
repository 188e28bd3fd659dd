"""The one place the pipeline's own code assembles an event, instead of writing dicts by hand.

* :func:`track_body`: the JSON body of a track event as a client would send it to the
  collector: ``messageId`` and ``timestamp`` optional (the collector stamps them and
  ``receivedAt``), for the collector's routes that turn something else into events (the
  tracking links, the providers' webhooks, the survey forms). The collector's ingest then
  validates it under the sender's rules, like any client's event.
* :func:`build_track` and :func:`build_alias`: a complete event, validated by the same gate
  as the collector's (:func:`ecrm_schemas.validation.validate_event`, catalogued properties
  included), for a service that produces to ``ecrm.events`` itself (the interaction service).
  Encode it with :func:`ecrm_schemas.events.encode_event`.

``identity`` names the customer the Segment way: ``{"userId": …}`` and/or ``{"anonymousId": …}``
(empty values are left out). ``library`` is the producer's name in ``context.library.name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ecrm_schemas.events import AliasEvent, TrackEvent
from ecrm_schemas.validation import validate_event


def _iso(moment: datetime | str) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else moment


def track_body(
    event: str,
    identity: Mapping[str, str | None],
    properties: Mapping[str, Any] | None = None,
    *,
    library: str,
    message_id: str | None = None,
    timestamp: datetime | str | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A track event's JSON body, not validated (see the module docstring). ``event``: a
    :class:`ecrm_schemas.catalog.CatalogEvent` member, or a custom event's name."""
    body: dict[str, Any] = {"type": "track", "event": str(event)}
    if message_id is not None:
        body["messageId"] = message_id
    if timestamp is not None:
        body["timestamp"] = _iso(timestamp)
    body.update({key: value for key, value in identity.items() if value})
    body["properties"] = dict(properties or {})
    body["context"] = {**(context or {}), "library": {"name": library}}
    return body


def build_track(
    event: str,
    identity: Mapping[str, str | None],
    properties: Mapping[str, Any] | None = None,
    *,
    library: str,
    message_id: str,
    timestamp: datetime,
    received_at: datetime | None = None,
    context: Mapping[str, Any] | None = None,
) -> TrackEvent:
    """A validated track event (``receivedAt``: ``received_at``, else now). Raises
    :class:`ecrm_schemas.validation.InvalidEvent` when it breaks the contract."""
    body = track_body(
        event, identity, properties, library=library, message_id=message_id, timestamp=timestamp, context=context
    )
    body["receivedAt"] = _iso(received_at or datetime.now(UTC))
    built = validate_event(body)
    assert isinstance(built, TrackEvent)
    return built


def build_alias(
    previous_id: str,
    user_id: str,
    *,
    library: str,
    message_id: str,
    timestamp: datetime,
    received_at: datetime | None = None,
) -> AliasEvent:
    """A validated alias event: ``previous_id`` is ``user_id`` from now on."""
    body = {
        "type": "alias",
        "previousId": previous_id,
        "userId": user_id,
        "messageId": message_id,
        "timestamp": _iso(timestamp),
        "receivedAt": _iso(received_at or datetime.now(UTC)),
        "context": {"library": {"name": library}},
    }
    built = validate_event(body)
    assert isinstance(built, AliasEvent)
    return built
