"""Stamp an incoming event with what the server knows: id, receipt time, corrected clock.

Follows the Segment spec: ``timestamp = receivedAt - (sentAt - originalTimestamp)`` when the
client sent both ``sentAt`` and ``timestamp``, which corrects a client clock that is off.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(raw: dict[str, Any], received_at: datetime, event_type: str | None = None) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``messageId``, ``receivedAt`` and a corrected ``timestamp``.

    ``event_type`` is set when the route implies it (``/v1/track`` → ``track``). Values the
    server cannot interpret are left for validation to reject.
    """
    event = dict(raw)
    event.pop("writeKey", None)  # analytics.js may carry it in the body; it must never reach Kafka
    if event_type is not None:
        event["type"] = event_type
    if not event.get("messageId"):
        event["messageId"] = str(uuid.uuid4())
    event["receivedAt"] = _iso(received_at)
    sent_at = _parse(event.get("sentAt"))
    original = _parse(event.get("timestamp"))
    if "timestamp" in event and original is None:
        return event  # unparseable: validation names the field
    if original is None:
        event["timestamp"] = event["receivedAt"]
        return event
    event["originalTimestamp"] = event["timestamp"]
    if sent_at is not None:
        # A clock so far off that the correction leaves the calendar: keep what the client said.
        with contextlib.suppress(OverflowError):
            event["timestamp"] = _iso(received_at - (sent_at - original))
    return event
