"""The contact policy (pure): before every message to a customer, one decision.

In this order, the first rule that applies decides:

1. no address for the channel → suppressed (``no_email_address``);
2. the address is suppressed after a hard bounce or a spam complaint → never (``hard_bounce``,
   ``complaint``), transactional mail included. A suppression belongs to the address (see
   :func:`address_digest`), not to the customer: a customer who gives a new address is mailed
   there. A complaint also unsubscribes the customer (the person asked for no more marketing),
   so the new address gets transactional mail, and marketing only after a new opt-in;
3. the customer unsubscribed → no marketing message (``unsubscribed``);
4. consent: a withdrawn consent for the channel stops marketing (``no_consent``); with
   ``require_opt_in`` an unknown consent does too;
5. the rule's cooldown: the same rule reached this customer within it (``cooldown``), any category;
6. frequency caps per channel, e.g. at most 1 a day and 3 a week (``frequency_cap_1_per_1d``):
   marketing messages only, counting the marketing messages sent. ``onboarding`` messages (a
   welcome series the customer's sign-up asked for) are marketing in every other respect
   (consent, unsubscribe, quiet hours) but neither held back by the caps nor counted in them;
7. quiet hours in the customer's time zone (their ``timezone`` trait, else the default):
   a marketing message is deferred to the end of the quiet hours, not dropped.

Otherwise the message is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ecrm_interaction.engine.rules import format_duration

_ADDRESS_NAMESPACE = b"ecrm-address:v1:"


def address_digest(address: str) -> str:
    """The key of an address's suppression: SHA-256 of the trimmed, lower-cased address (hex).
    The suppression list keeps this digest, never the address (migration 0004 holds a frozen copy)."""
    return hashlib.sha256(_ADDRESS_NAMESPACE + address.strip().lower().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    count: int
    window: timedelta

    @property
    def reason(self) -> str:
        return f"frequency_cap_{self.count}_per_{format_duration(self.window)}"


@dataclass(frozen=True, slots=True)
class PolicySettings:
    caps: tuple[FrequencyCap, ...] = (FrequencyCap(1, timedelta(days=1)), FrequencyCap(3, timedelta(days=7)))
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    default_timezone: str = "UTC"
    require_opt_in: bool = False


@dataclass(frozen=True, slots=True)
class Contact:
    """What the policy knows of a customer's address."""

    address: str | None
    timezone: str | None = None
    consent: bool | None = None
    """For the channel: granted, withdrawn, or never asked (None)."""
    unsubscribed: bool = False
    suppressed: str | None = None
    """``hard_bounce`` or ``complaint``: the suppression of ``address``."""


@dataclass(frozen=True, slots=True)
class History:
    """Messages already sent on the channel."""

    marketing_sent_at: Sequence[datetime] = ()
    """Marketing messages sent to this customer (newest last is not required)."""
    rule_last_at: datetime | None = None
    """When this rule last reached this customer."""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Literal["send", "suppress", "defer"]
    reason: str
    until: datetime | None = None
    """For ``defer``: when the message may go."""
    checked: list[str] = field(default_factory=list)
    """The rules looked at, in order (for dry runs)."""


def decide(
    contact: Contact,
    history: History,
    category: Literal["marketing", "onboarding", "transactional"],
    cooldown: timedelta | None,
    now: datetime,
    settings: PolicySettings = PolicySettings(),
) -> Verdict:
    checked: list[str] = []

    def verdict(outcome: Literal["send", "suppress", "defer"], reason: str, until: datetime | None = None) -> Verdict:
        return Verdict(outcome, reason, until, checked)

    marketing = category != "transactional"  # consent, unsubscribes and quiet hours
    capped = category == "marketing"
    checked.append("address")
    if not contact.address:
        return verdict("suppress", "no_email_address")
    checked.append("suppression")
    if contact.suppressed:
        return verdict("suppress", contact.suppressed)
    if marketing:
        checked.append("unsubscribe")
        if contact.unsubscribed:
            return verdict("suppress", "unsubscribed")
        checked.append("consent")
        if contact.consent is False or (contact.consent is None and settings.require_opt_in):
            return verdict("suppress", "no_consent")
    if cooldown is not None:
        checked.append("cooldown")
        if history.rule_last_at is not None and now - history.rule_last_at < cooldown:
            return verdict("suppress", "cooldown")
    if capped:
        checked.append("frequency_caps")
        for cap in settings.caps:
            recent = sum(1 for at in history.marketing_sent_at if now - at < cap.window)
            if recent >= cap.count:
                return verdict("suppress", cap.reason)
    if marketing:
        checked.append("quiet_hours")
        until = quiet_hours_end(now, contact.timezone, settings)
        if until is not None:
            return verdict("defer", "quiet_hours", until)
    return verdict("send", "allowed")


def zone_of(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_hours_end(now: datetime, timezone: str | None, settings: PolicySettings) -> datetime | None:
    """The end of the quiet hours ``now`` falls in, in the customer's zone; None when not quiet."""
    zone = zone_of(timezone, settings.default_timezone)
    local = now.astimezone(zone)
    start, end = settings.quiet_start, settings.quiet_end
    if start == end:
        return None
    moment = local.time()
    overnight = start > end  # 21:00 → 08:00
    quiet = (moment >= start or moment < end) if overnight else (start <= moment < end)
    if not quiet:
        return None
    day = local.date() if moment < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(now.tzinfo)
