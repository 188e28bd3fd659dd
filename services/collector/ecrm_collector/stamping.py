"""Stamp an incoming event with what the server knows: id, receipt time, corrected clock.

Follows the Segment spec: ``timestamp = receivedAt - (sentAt - originalTimestamp)`` when the
client sent both ``sentAt`` and ``timestamp``, which corrects a client clock that is off.
Times the server sets are ``datetime`` objects (validation takes them as they are, with no
formatting and re-parsing per event); what the client sent is kept as sent.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=256)
def _parse_text(value: str) -> datetime | None:
    # Cached: a batch's events share its sentAt, and SDK timestamps repeat within a request.
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse(value: Any) -> datetime | None:
    return _parse_text(value) if isinstance(value, str) else None


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
    event["receivedAt"] = received_at
    if "timestamp" not in event or event["timestamp"] is None:
        event["timestamp"] = received_at
        return event
    original = _parse(event["timestamp"])
    if original is None:
        return event  # unparseable: validation names the field
    event["originalTimestamp"] = event["timestamp"]
    sent_at = _parse(event.get("sentAt"))
    if sent_at is not None:
        # A clock so far off that the correction leaves the calendar: keep what the client said.
        with contextlib.suppress(OverflowError):
            event["timestamp"] = received_at - (sent_at - original)
    return event
