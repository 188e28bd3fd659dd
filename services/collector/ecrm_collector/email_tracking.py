"""Email opens and clicks as events (pure).

Opens are flagged as likely machine opens instead of counted as human when the request
comes from a known mail privacy proxy or link scanner, or arrives within seconds of the
send (prefetching). The flag is ``machine_open`` on the ``Email Opened`` event.
"""

from __future__ import annotations

import re
from typing import Any

from ecrm_schemas.tracking import TrackingToken

# A 1x1 transparent GIF.
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
MACHINE_AGENTS = re.compile(
    r"GoogleImageProxy|YahooMailProxy|Barracuda|Mimecast|Proofpoint|Symantec|SpamAssassin|bot\b|crawler|python-|curl/",
    re.IGNORECASE,
)


def is_machine_open(token: TrackingToken, user_agent: str | None, now: float, prefetch_window_s: float) -> bool:
    if not user_agent or MACHINE_AGENTS.search(user_agent):
        return True
    return now - token.issued_at < prefetch_window_s


def _event(token: TrackingToken, name: str, properties: dict[str, Any]) -> dict[str, Any]:
    base = {"email_id": token.email_id} | ({"rule_id": token.rule_id} if token.rule_id else {})
    if token.campaign_id:
        base["campaign_id"] = token.campaign_id
    return {
        "type": "track",
        "event": name,
        token.customer_kind: token.customer,
        "properties": base | properties,
        "context": {"library": {"name": "ecrm-email-tracking"}},
    }


def open_event(token: TrackingToken, *, machine_open: bool, user_agent: str | None) -> dict[str, Any]:
    event = _event(token, "Email Opened", {"machine_open": machine_open})
    if user_agent:
        event["context"]["userAgent"] = user_agent
    return event


def click_event(token: TrackingToken, user_agent: str | None) -> dict[str, Any]:
    event = _event(token, "Email Link Clicked", {"link_url": token.url})
    if user_agent:
        event["context"]["userAgent"] = user_agent
    return event
