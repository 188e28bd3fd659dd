"""Cron schedules of rules (pure): when a schedule is next due (cronsim)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim

EPOCH = datetime(2000, 1, 1)


def due_slots(cron: str, timezone: str, after: datetime, now: datetime, limit: int = 1) -> list[datetime]:
    """The times of ``cron`` in ``timezone`` that fall in (``after``, ``now``], oldest first, in UTC.

    A service down for a while fires only the latest ``limit`` of the slots it missed: a
    weekly newsletter is not sent three times after three weeks of downtime.
    """
    zone = ZoneInfo(timezone)
    slots: list[datetime] = []
    for local in CronSim(cron, after.astimezone(zone).replace(tzinfo=None)):
        at = local.replace(tzinfo=zone).astimezone(UTC)
        if at > now:
            break
        if at > after:
            slots.append(at)
    return slots[-limit:]
