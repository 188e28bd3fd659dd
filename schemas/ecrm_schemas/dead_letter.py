"""What a dead-letter topic holds: a value that could not be processed, and why."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from ecrm_schemas.validation import FieldError

SenderKind = Literal["browser", "server", "verified"]
"""Who sent an event to the collector: a public ``browser`` write key, a secret ``server`` key,
or one of the collector's ``verified`` routes (signed tracking links, signed provider webhooks)."""

Reason = Literal["invalid_event", "undecodable", "processing_failed", "invalid_definition"]
"""``invalid_definition``: a segment definition the aggregator refused (ecrm.segment-definitions.dlq)."""


class DeadLetterError(BaseModel):
    """One failed rule: which field, which rule, and a readable message."""

    field: str
    rule: str
    message: str


class DeadLetter(BaseModel):
    """A rejected value with everything needed to inspect and replay it."""

    topic: str = Field(description="The topic the value was meant for.")
    source: str = Field(description="Who rejected it: the service, and the ingest source if known.")
    reason: Reason
    errors: list[DeadLetterError]
    payload: str = Field(description="The raw value, as text or base64 (see payload_encoding).")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    failed_at: datetime
    partition: int | None = Field(default=None, description="Where it was read from, if from Kafka.")
    offset: int | None = None
    sender_kind: SenderKind | None = Field(
        default=None,
        description="The kind of sender the collector refused it from; a replay applies that sender's rules "
        "(a browser key's back-end or contact-state event is never replayed). None: not refused by the collector, "
        "or dead-lettered before this was recorded.",
    )
    event_type: str | None = Field(
        default=None, description="The type the route implied (`/v1/track` → `track`), absent from the payload."
    )
    message_id: str | None = Field(
        default=None,
        description="The messageId the collector gave an event that had none; a replay keeps it, so replaying "
        "twice folds the event once.",
    )

    @classmethod
    def build(
        cls,
        *,
        topic: str,
        source: str,
        reason: Reason,
        errors: list[FieldError],
        payload: bytes,
        partition: int | None = None,
        offset: int | None = None,
        sender_kind: SenderKind | None = None,
        event_type: str | None = None,
        message_id: str | None = None,
    ) -> DeadLetter:
        try:
            text, encoding = payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
        return cls(
            topic=topic,
            source=source,
            reason=reason,
            errors=[DeadLetterError(**e.as_dict()) for e in errors],
            payload=text,
            payload_encoding=encoding,  # type: ignore[arg-type]
            failed_at=datetime.now(UTC),
            partition=partition,
            offset=offset,
            sender_kind=sender_kind,
            event_type=event_type,
            message_id=message_id,
        )

    def raw_payload(self) -> bytes:
        """The value as it was received."""
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")
