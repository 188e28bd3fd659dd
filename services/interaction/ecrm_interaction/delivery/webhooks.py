"""Outgoing webhooks: Standard Webhooks signatures, and a guard against server-side request forgery.

A rule's webhook URL is typed by a marketer, so it must not reach what only the service can
reach: the host is resolved first, every address it resolves to must be public (not
loopback, private, link-local, multicast, reserved…) unless the operator allows it
(``INTERACTION_WEBHOOK_ALLOWED_HOSTS``), and the request then goes to the address that was
checked (the ``Host`` header and TLS server name stay the URL's), so a second DNS answer
cannot point it elsewhere. Redirects are not followed.

Each request carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``), as the Standard Webhooks
specification says; receivers verify them with any Standard Webhooks library.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook


class UnsafeWebhookTarget(ValueError):
    """The URL points at an address the service must not call."""


def signing_key(secret: str) -> bytes:
    """``whsec_<base64>`` as the standard writes secrets; any other string as its bytes."""
    if secret.startswith("whsec_"):
        import base64

        return base64.b64decode(secret.removeprefix("whsec_") + "==")
    return secret.encode()


def signed_headers(secret: str, message_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
    at = now or datetime.now(UTC)
    signature = Webhook(signing_key(secret)).sign(message_id, at, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def _allowed(host: str, address: str, allowed: Iterable[str]) -> bool:
    for entry in allowed:
        if entry == host:
            return True
        try:
            if ipaddress.ip_address(address) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


async def resolve_public(url: str, allowed: Iterable[str] = ()) -> str:
    """The address to connect to for ``url``; raises :class:`UnsafeWebhookTarget` unless every
    address the host resolves to is public or allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookTarget("a webhook URL is http(s) with a host")
    if parts.username or parts.password:
        raise UnsafeWebhookTarget("a webhook URL may not carry credentials")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeWebhookTarget(f"{host} does not resolve") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    allowed = list(allowed)
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not all(a.is_global for a in (ip, *_embedded_ipv4(ip))) and not _allowed(host, address, allowed):
            raise UnsafeWebhookTarget(f"{host} resolves to a non-public address ({ip})")
    return addresses[0]


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64), which a
    translating network would reach: they must be public too."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in NAT64:
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [a for a in carried if a is not None]


async def post(
    url: str, body: str, headers: dict[str, str], *, timeout_s: float, allowed: Iterable[str] = ()
) -> httpx.Response:
    """POST ``body`` to the checked address of ``url`` (no redirects); raises for a non-2xx answer."""
    address = await resolve_public(url, allowed)
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        response = await client.post(
            pinned,
            content=body.encode(),
            headers={**headers, "host": parts.netloc.rpartition("@")[2]},
            extensions={"sni_hostname": host} if parts.scheme == "https" else {},
        )
    response.raise_for_status()
    return response
