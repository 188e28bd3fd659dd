"""What every report shares: the filters, the answer's shape, periods, and the SQL pieces that
map an event to its customer and keep a segment's members.

A report is a module of this package with ``NAME``, ``TITLE``, ``DEFINITION`` (in a marketer's
words), a ``Params`` model (the filters it takes, validated: a bad one is a 422 naming it),
``queries(params) -> dict[str, Query]``, ``shape(params, results) -> Report`` and
``drill(params, cell) -> Query`` (the customers behind one number). Everything here is pure:
the shell (:mod:`ecrm_interaction.api.services.reports`) runs the queries on ClickHouse.

Queries read ``{db}.business_events`` (the business events with their properties taken out,
migration 0010) or ``{db}.events``, always with ``FINAL`` on the former so that a redelivered
event counts once before the parts merge. An event belongs to the customer it was sent for, or
to the user its anonymous id was stitched to (``identity_links``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_DAYS = 3 * 366
"""The longest date range a report covers."""
DRILL_LIMIT = 100_000
"""The most customers a drill-down lists (a CSV of them too)."""

LINKS = "(SELECT anonymous_id, user_id FROM {db}.identity_links FINAL WHERE state = 'merged')"
"""Anonymous ids and the user each was stitched to."""
CUSTOMER = "if(l.user_id != '', l.user_id, e.customer_id)"
"""The customer of event ``e`` joined with :data:`LINKS` as ``l``."""


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


BUCKET = {
    Interval.HOUR: "toStartOfHour",
    Interval.DAY: "toStartOfDay",
    Interval.WEEK: "toMonday",
    Interval.MONTH: "toStartOfMonth",
}
"""The ClickHouse function that gives an event's period (weeks start on Monday, UTC)."""


def _today() -> date:
    return datetime.now(UTC).date()


class Filters(BaseModel):
    """The filters every report takes: the days it covers (``since`` to ``until``, both
    included, UTC; the last 30 days by default) and, optionally, one segment: only the
    customers who are members of it now."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    since: date = Field(default_factory=lambda: _today() - timedelta(days=29))
    until: date = Field(default_factory=_today, validate_default=True)
    segment: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")

    @field_validator("until")
    @classmethod
    def _range(cls, until: date, info: ValidationInfo) -> date:
        since = info.data.get("since")
        if since is not None and until < since:
            raise ValueError("must be on or after since")
        if since is not None and (until - since).days >= MAX_DAYS:
            raise ValueError(f"a report covers at most {MAX_DAYS} days")
        return until

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, datetime.min.time())

    @property
    def end(self) -> datetime:
        """The first moment after the range."""
        return datetime.combine(self.until + timedelta(days=1), datetime.min.time())

    def bounds(self) -> dict[str, Any]:
        """The query parameters of the range and the segment."""
        return {"start": self.start, "end": self.end, "segment": self.segment or ""}

    def echo(self) -> dict[str, Any]:
        """The filters as the answer repeats them."""
        return self.model_dump(mode="json")


IN_RANGE = "e.timestamp >= {start:DateTime64(3, 'UTC')} AND e.timestamp < {end:DateTime64(3, 'UTC')}"


def in_segment(customer: str = "customer") -> str:
    """A condition keeping ``customer`` when the report has no segment or they are a member of it."""
    return (
        f"({{segment:String}} = '' OR {customer} IN "
        "(SELECT customer_id FROM {db}.segment_members WHERE segment_id = {segment:String}))"
    )


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    parameters: dict[str, Any] = field(default_factory=dict)


ColumnKind = Literal["text", "period", "count", "money", "rate", "number", "days", "seconds"]


class Column(BaseModel):
    key: str
    label: str
    kind: ColumnKind = "count"


class Series(BaseModel):
    label: str
    values: list[float | None]


class Chart(BaseModel):
    """What the console draws: ``kind`` line (over time) or bar (one bar group per x label)."""

    kind: Literal["line", "bar"]
    x: list[str]
    series: list[Series]
    y: ColumnKind = "count"


class Report(BaseModel):
    """A report's answer: its definition in words, the filters it applied, a table (``columns``
    and ``rows``; a row's ``cell`` names the customers behind it for the drill-down) and the
    chart of it."""

    name: str
    title: str
    definition: str
    filters: dict[str, Any]
    columns: list[Column]
    rows: list[dict[str, Any]]
    chart: Chart | None = None
    summary: dict[str, Any] = {}
    notes: list[str] = []


class DrillError(ValueError):
    """The drill-down's cell does not name a number of this report."""


def periods(since: date, until: date, interval: Interval) -> list[datetime]:
    """Every period's start from the one holding ``since`` to the one holding ``until``: the
    empty periods are rows too."""
    start = datetime.combine(since, datetime.min.time())
    if interval is Interval.WEEK:
        start -= timedelta(days=start.weekday())
    elif interval is Interval.MONTH:
        start = start.replace(day=1)
    last = datetime.combine(until, datetime.max.time())
    found = []
    moment = start
    while moment <= last:
        found.append(moment)
        moment = next_period(moment, interval)
    return found


def next_period(moment: datetime, interval: Interval) -> datetime:
    if interval is Interval.HOUR:
        return moment + timedelta(hours=1)
    if interval is Interval.DAY:
        return moment + timedelta(days=1)
    if interval is Interval.WEEK:
        return moment + timedelta(days=7)
    return (moment.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_label(moment: datetime | date, interval: Interval) -> str:
    """A period as rows and CSV name it: ``2026-11-02`` (a day, a week's Monday), ``2026-11``
    (a month), ``2026-11-02T14:00`` (an hour)."""
    if interval is Interval.HOUR:
        assert isinstance(moment, datetime)
        return moment.strftime("%Y-%m-%dT%H:00")
    if interval is Interval.MONTH:
        return moment.strftime("%Y-%m")
    return moment.strftime("%Y-%m-%d")


def parse_period(label: str, interval: Interval) -> datetime:
    """The start of the period :func:`period_label` named (a :class:`DrillError` otherwise)."""
    formats = {Interval.HOUR: "%Y-%m-%dT%H:00", Interval.MONTH: "%Y-%m"}
    try:
        return datetime.strptime(label, formats.get(interval, "%Y-%m-%d"))
    except ValueError as exc:
        raise DrillError(f"{label!r} is not a {interval.value} of this report") from exc


def as_datetime(value: Any) -> datetime:
    """A ClickHouse date or datetime as a naive UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    raise TypeError(f"not a date: {value!r}")


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None
