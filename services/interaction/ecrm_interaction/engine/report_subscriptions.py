"""When a report subscription is next due, and what range a saved report covers on a day. Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

Cadence = Literal["daily", "weekly", "monthly"]
CADENCES: tuple[Cadence, ...] = ("daily", "weekly", "monthly")


def next_due(cadence: Cadence, hour: int, after: datetime) -> datetime:
    """The first send strictly after ``after``: every day, every Monday or every 1st of the month,
    at ``hour`` o'clock UTC."""
    moment = after.astimezone(UTC)
    candidate = moment.replace(hour=hour, minute=0, second=0, microsecond=0)
    if cadence == "daily":
        return candidate if candidate > moment else candidate + timedelta(days=1)
    if cadence == "weekly":
        candidate -= timedelta(days=candidate.weekday())
        return candidate if candidate > moment else candidate + timedelta(days=7)
    candidate = candidate.replace(day=1)
    if candidate > moment:
        return candidate
    return (candidate.replace(day=28) + timedelta(days=4)).replace(day=1)


def covered(cadence: Cadence, due: datetime) -> tuple[date, date]:
    """The days an issue sent at ``due`` reports on by default: the day, week (Monday to Sunday)
    or month that ended before it."""
    last = (due.astimezone(UTC) - timedelta(days=1)).date()
    if cadence == "daily":
        return last, last
    if cadence == "weekly":
        return last - timedelta(days=6), last
    return last.replace(day=1), last


def filters_on(params: dict[str, Any], days: int | None, today: date) -> dict[str, Any]:
    """A saved report's filters on ``today``: a rolling range ends today and covers ``days`` days;
    a saved range is kept as it is."""
    if days is None:
        return dict(params)
    return dict(params) | {"since": (today - timedelta(days=days - 1)).isoformat(), "until": today.isoformat()}
