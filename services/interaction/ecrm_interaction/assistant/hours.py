"""Business hours: when people answer the chat, and when they are back.

Written as ``mon-fri 09:00-18:00, sat 10:00-14:00`` in one time zone (``INTERACTION_SUPPORT_HOURS``
and ``INTERACTION_SUPPORT_TIMEZONE``); ``always`` for around the clock. A range of days wraps
(``fri-mon``); ``24:00`` ends a day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class BusinessHours:
    opening: tuple[tuple[int, time, time | None], ...]
    """(weekday 0=Monday, from, until; None: until midnight)."""
    zone: ZoneInfo
    always: bool = False

    def open_at(self, now: datetime) -> bool:
        if self.always:
            return True
        local = now.astimezone(self.zone)
        return any(
            day == local.weekday() and start <= local.time() and (end is None or local.time() < end)
            for day, start, end in self.opening
        )

    def next_opening(self, now: datetime) -> datetime | None:
        """When people are next at work (``now`` if they are; None: never)."""
        if self.open_at(now):
            return now
        local = now.astimezone(self.zone)
        for ahead in range(8):
            date = (local + timedelta(days=ahead)).date()
            starts = sorted(start for day, start, _ in self.opening if day == date.weekday())
            for start in starts:
                at = datetime.combine(date, start, self.zone)
                if at > local:
                    return at
        return None


def parse_hours(text: str, zone: str) -> BusinessHours:
    """Parse business hours; raises ``ValueError`` naming the part it cannot read."""
    tz = ZoneInfo(zone)
    if text.strip().lower() == "always":
        return BusinessHours((), tz, always=True)
    opening: list[tuple[int, time, time | None]] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        found = _PART.match(part)
        if not found or not all(d in DAYS for d in found["days"].split("-")):
            raise ValueError(f"business hours are like 'mon-fri 09:00-18:00', not {part!r}")
        first, _, last = found["days"].partition("-")
        start_day, end_day = DAYS.index(first), DAYS.index(last or first)
        days = [(start_day + i) % 7 for i in range((end_day - start_day) % 7 + 1)]
        start = time.fromisoformat(found["start"])
        end = None if found["end"] == "24:00" else time.fromisoformat(found["end"])
        if end is not None and end <= start:
            raise ValueError(f"business hours end after they start: {part!r}")
        opening += [(day, start, end) for day in days]
    if not opening:
        raise ValueError("business hours name at least one day, or 'always'")
    return BusinessHours(tuple(opening), tz)
