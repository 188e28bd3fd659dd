"""Email opens and clicks as events (pure).

An ``Email Opened`` event carries ``machine_open``: true when nobody needed to look at the
message for the image to be fetched. The rule tells *prefetching* from *proxying*:

- machine (prefetched or scanned): Apple Mail Privacy Protection, which fetches every image
  when the message is delivered, from Apple's network (``17.0.0.0/8``) with the bare user
  agent ``Mozilla/5.0``; link scanners and security gateways (Barracuda, Mimecast,
  Proofpoint, Symantec, SpamAssassin, bots, crawlers, scripts such as curl or python-…);
  a request without a user agent; a fetch within ``COLLECTOR_MACHINE_OPEN_S`` of the send.
- human: image proxies that fetch when a person opens the message (Gmail's
  ``GoogleImageProxy``, ``YahooMailProxy``, Outlook's), and every other client.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ecrm_schemas.builders import track_body
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.tracking import TrackingToken

# A 1x1 transparent GIF.
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
SCANNER_AGENTS = re.compile(
    r"Barracuda|Mimecast|Proofpoint|Symantec|SpamAssassin|bot\b|crawler|python-|curl/|Go-http-client|Wget/",
    re.IGNORECASE,
)
"""Link scanners, security gateways and scripts: they fetch without a person."""
APPLE_PREFETCH_AGENT = "Mozilla/5.0"
"""Apple Mail Privacy Protection's user agent, exactly: no browser or system detail."""
APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
"""Apple's own network, where Mail Privacy Protection's prefetches come from."""


def _from_apple(ip: str | None) -> bool:
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return False
    return any(address in network for network in APPLE_NETWORKS)


def machine_fetch(user_agent: str | None, ip: str | None = None) -> bool:
    """Positive evidence of a fetch no person asked for: a scanner, or Apple's prefetching.

    Proxies that fetch when a person opens (GoogleImageProxy, YahooMailProxy, Outlook's)
    are not evidence: their opens are human.
    """
    agent = (user_agent or "").strip()
    if agent and SCANNER_AGENTS.search(agent):
        return True
    return agent == APPLE_PREFETCH_AGENT or _from_apple(ip)


def is_machine_open(
    token: TrackingToken, user_agent: str | None, now: float, prefetch_window_s: float, ip: str | None = None
) -> bool:
    """Our open pixel's rule (see the module docstring); ``ip`` is the requesting address."""
    if not user_agent or machine_fetch(user_agent, ip):
        return True
    return now - token.issued_at < prefetch_window_s


def _event(token: TrackingToken, name: str, properties: dict[str, Any]) -> dict[str, Any]:
    base = {"email_id": token.email_id} | ({"rule_id": token.rule_id} if token.rule_id else {})
    if token.campaign_id:
        base["campaign_id"] = token.campaign_id
    if token.variant:
        base["variant"] = token.variant
    return track_body(name, {token.customer_kind: token.customer}, base | properties, library="ecrm-email-tracking")


def open_event(token: TrackingToken, *, machine_open: bool, user_agent: str | None) -> dict[str, Any]:
    event = _event(token, CatalogEvent.EMAIL_OPENED, {"machine_open": machine_open})
    if user_agent:
        event["context"]["userAgent"] = user_agent
    return event


def click_event(token: TrackingToken, user_agent: str | None) -> dict[str, Any]:
    event = _event(token, CatalogEvent.EMAIL_LINK_CLICKED, {"link_url": token.url})
    if user_agent:
        event["context"]["userAgent"] = user_agent
    return event
