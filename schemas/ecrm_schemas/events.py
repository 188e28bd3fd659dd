"""The event envelope: every event on the pipeline, shaped like the Segment spec.

An event arrives at the collector as JSON, is stamped (``messageId``, ``receivedAt``,
clock-corrected ``timestamp``) and validated into one of the models below, and travels
as that model's JSON on the events topic. The aggregator and the interaction service
decode it with :func:`decode_event`.

Field names follow the Segment spec (camelCase on the wire) so that existing Segment
and RudderStack SDKs can send to the collector unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError

RESERVED_MESSAGE_ID_PREFIXES = ("ecrm-", "sendgrid:", "mailgun:", "ses:")
"""Message ids the pipeline's own producers use (the interaction service's reports, the
providers' webhooks). The pipeline deduplicates by messageId, so a public browser key that
sent one first would make the real event be dropped; the collector refuses them from browser keys."""

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: tuple[EventType, ...] = ("track", "identify", "page", "screen", "group", "alias")


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside the calendar once converted to UTC") from None


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
EventName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Context(BaseModel):
    """Where and how the event happened. Known Segment keys are typed; others pass through."""

    model_config = ConfigDict(extra="allow")

    ip: str | None = None
    userAgent: str | None = None
    locale: str | None = None
    timezone: str | None = None
    page: dict[str, Any] | None = None
    library: dict[str, Any] | None = None
    campaign: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None


class _Envelope(BaseModel):
    """Fields common to every event type."""

    model_config = ConfigDict(extra="allow", str_max_length=8192)

    messageId: Identifier
    userId: Identifier | None = None
    anonymousId: Identifier | None = None
    timestamp: Timestamp
    """When the event happened, corrected for the client's clock (see the collector)."""
    originalTimestamp: Timestamp | None = None
    """The timestamp as the client sent it, before clock correction."""
    sentAt: Timestamp | None = None
    receivedAt: Timestamp
    context: Context = Field(default_factory=Context)
    integrations: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _someone(self) -> _Envelope:
        if self.userId is None and self.anonymousId is None:
            # ``field`` names it in the error answer (a model validator's error has no location).
            raise PydanticCustomError(
                "required_one_of", "userId or anonymousId is required (one of them)", {"field": "userId"}
            )
        return self

    @property
    def customer_key(self) -> str:
        """The identifier the event is keyed by on Kafka: userId, else anonymousId."""
        return self.userId or self.anonymousId  # type: ignore[return-value]


class TrackEvent(_Envelope):
    """A user did something: ``event`` names it, ``properties`` describe it.

    Events named in :mod:`ecrm_schemas.catalog` have typed properties.
    """

    type: Literal["track"]
    event: EventName
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyEvent(_Envelope):
    """Who the user is: ``traits`` such as email, name, plan."""

    type: Literal["identify"]
    traits: dict[str, Any] = Field(default_factory=dict)


class PageEvent(_Envelope):
    """A page view on the web."""

    type: Literal["page"]
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenEvent(_Envelope):
    """A screen view in a mobile app."""

    type: Literal["screen"]
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class GroupEvent(_Envelope):
    """The user belongs to a group (company, household, account)."""

    type: Literal["group"]
    groupId: Identifier
    traits: dict[str, Any] = Field(default_factory=dict)


class AliasEvent(_Envelope):
    """Two identities are the same user: ``previousId`` becomes ``userId``."""

    type: Literal["alias"]
    previousId: Identifier
    userId: Identifier  # type: ignore[assignment]


Event = Annotated[
    TrackEvent | IdentifyEvent | PageEvent | ScreenEvent | GroupEvent | AliasEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def decode_event(payload: bytes | str) -> Event:
    """Parse one event from its wire JSON. Raises ``pydantic.ValidationError``."""
    return EVENT_ADAPTER.validate_json(payload)


def encode_event(event: Event) -> bytes:
    """The wire JSON of an event (camelCase, no nulls)."""
    return event.model_dump_json(exclude_none=True).encode()


def event_label(event: Event) -> str:
    """A short label for counting: the track event's name, else the event type."""
    return event.event if isinstance(event, TrackEvent) else event.type


def event_properties(event: Event) -> dict[str, Any] | None:
    """The ``properties`` of a track, page or screen event; None for the other types."""
    return event.properties if isinstance(event, TrackEvent | PageEvent | ScreenEvent) else None


def view_name(event: Event) -> str | None:
    """A page or screen call's ``name``: the top-level field (Segment's libraries), else
    ``properties.name`` (analytics.js puts it in both); None for the other types."""
    return _view_field(event, "name")


def view_category(event: Event) -> str | None:
    """A page or screen call's ``category``, found like :func:`view_name`."""
    return _view_field(event, "category")


def _view_field(event: Event, key: Literal["name", "category"]) -> str | None:
    if not isinstance(event, PageEvent | ScreenEvent):
        return None
    value = getattr(event, key) or event.properties.get(key)
    return value if isinstance(value, str) and value else None


def event_traits(event: Event) -> dict[str, Any] | None:
    """The ``traits`` of an identify or group event; None for the other types."""
    return event.traits if isinstance(event, IdentifyEvent | GroupEvent) else None
