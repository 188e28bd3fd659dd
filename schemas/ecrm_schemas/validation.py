"""Turn untrusted JSON into a valid event, or into errors that name the field and rule.

:func:`validate_event` is the single gate every event passes, at the collector and again
at the aggregator (which never trusts what it reads from Kafka).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ecrm_schemas.catalog import CATALOG
from ecrm_schemas.events import EVENT_ADAPTER, Event, TrackEvent


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason an event is invalid: the dotted field path, the rule and a message."""

    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


class InvalidEvent(ValueError):
    """Raised by :func:`validate_event`; ``errors`` lists every failed rule."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def field_errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    """pydantic's errors as :class:`FieldError` s with dotted paths."""
    errors = []
    for err in exc.errors(include_url=False):
        # The discriminated union adds the tag ("track", ...) as the first path element.
        loc = err["loc"]
        if not prefix and loc and loc[0] in ("track", "identify", "page", "screen", "group", "alias"):
            loc = loc[1:]
        named = (err.get("ctx") or {}).get("field")  # a model-level rule naming its field
        if named and not loc:
            loc = (named,)
        path = ".".join(str(p) for p in (*prefix, *loc)) or "$"
        errors.append(FieldError(field=path, rule=err["type"], message=err["msg"]))
    return errors


def validate_event(raw: Any) -> Event:
    """Validate one decoded JSON value as an event, including catalogued properties.

    Raises :class:`InvalidEvent` with every failing field.
    """
    if not isinstance(raw, dict):
        raise InvalidEvent([FieldError("$", "dict_type", "an event must be a JSON object")])
    if "type" not in raw:
        raise InvalidEvent([FieldError("type", "missing", "Field required")])
    try:
        event = EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise InvalidEvent(field_errors(exc)) from None
    if isinstance(event, TrackEvent) and (entry := CATALOG.get(event.event)) is not None:
        # Validated but kept as sent: the typed model checks, it does not rewrite.
        try:
            entry.properties.model_validate(event.properties)
        except ValidationError as exc:
            raise InvalidEvent(field_errors(exc, prefix=("properties",))) from None
    return event
