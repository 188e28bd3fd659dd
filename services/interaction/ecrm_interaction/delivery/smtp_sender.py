"""The SMTP shell: build the MIME message and hand it to the mail server (aiosmtplib)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import policy as email_policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

import aiosmtplib

import ecrm_schemas.email_tags as email_tags
from ecrm_interaction.engine.rendering import RenderedEmail


def _fold_words(name: str, words: list[str], policy: Policy) -> str:
    """``name: word word …``, a line broken before a word when it would pass the policy's length."""
    limit = policy.max_line_length or 998
    lines = [f"{name}: {words[0]}"]
    for word in words[1:]:
        if word and len(lines[-1]) + 1 + len(word) > limit:
            lines.append(f" {word}")
        else:
            lines[-1] += f" {word}"
    return policy.linesep.join(lines) + policy.linesep


class PlainHeader(UnstructuredHeader, BaseHeader):
    """A header sent as it is: ASCII, folded only at its spaces, never RFC 2047-encoded.

    The standard folding encodes a long word it cannot break (``=?utf-8?q?...``); the
    readers of these headers (mail clients, the ESPs) do not decode them.
    """

    def _words(self) -> list[str]:
        return str(self).split(" ")

    def fold(self, *, policy: Policy) -> str:
        if not str(self).isascii() or not str(self).strip():
            raise ValueError(f"{self.name} must be non-empty ASCII")
        return _fold_words(self.name, self._words(), policy)


class ListHeader(PlainHeader):
    """An RFC 2369 list header (``List-Unsubscribe``): ``<URL>`` items, folded only after the
    commas between them, each ``<URL>`` whole however long."""

    max_count = 1
    _ITEM = re.compile(r"<[^<>\s]+>")

    def _words(self) -> list[str]:
        items = self._ITEM.findall(str(self))
        if not items:
            raise ValueError(f"{self.name} must hold <URL> items separated by commas")
        return [item + "," for item in items[:-1]] + items[-1:]


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", ListHeader)
for _name in email_tags.PROVIDER_HEADERS:
    _HEADERS.map_to_type(_name.lower(), PlainHeader)
MAIL_POLICY = email_policy.SMTP.clone(header_factory=_HEADERS)
"""Python's SMTP policy, with the list and ESP headers written as :class:`PlainHeader` says."""


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=parts.scheme == "smtps",
        )


def compose(
    email: RenderedEmail,
    *,
    sender: str,
    recipient: str,
    send_id: str,
    rule_id: str,
    unsubscribe_url: str | None = None,
    unsubscribe_mailto: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A multipart (text, and HTML when the template has it) message.

    Its Message-ID derives from ``send_id``, so a message sent again after a crash carries the
    same id. With ``unsubscribe_url``, RFC 8058 one-click unsubscribe headers are added
    (``List-Unsubscribe`` with the https link, and the mailto when given, plus
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``). ``headers`` are added as they are
    (the ESP tags of :func:`ecrm_schemas.email_tags.provider_headers`).
    """
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2].strip("> ") or "ecrm.localhost"
    message["Message-ID"] = f"<{send_id}@{domain}>" if send_id else make_msgid(domain=domain)
    message["X-ECRM-Send-Id"] = send_id
    message["X-ECRM-Rule"] = rule_id
    if unsubscribe_url:
        targets = [f"<{unsubscribe_url}>"] + ([f"<mailto:{unsubscribe_mailto}>"] if unsubscribe_mailto else [])
        message["List-Unsubscribe"] = ", ".join(targets)
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    return message


async def deliver(
    message: EmailMessage,
    target: SmtpTarget,
    timeout_s: float,
    accepted: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Send one message; raises ``aiosmtplib.SMTPException`` or ``OSError`` on failure.

    ``accepted`` runs as soon as the server has accepted the message, before the session is
    closed: recording the send there keeps the moment a crash could send it twice short.
    """
    smtp = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        use_tls=target.implicit_tls,
        start_tls=None if not target.implicit_tls else False,
        timeout=timeout_s,
    )
    async with smtp:
        if target.username and target.password:
            await smtp.login(target.username, target.password)
        await smtp.send_message(message)
        if accepted is not None:
            await accepted()


@dataclass(frozen=True, slots=True)
class Mailer:
    """Where and how the service sends mail: the server, the timeout and the From address."""

    target: SmtpTarget
    timeout_s: float
    sender: str

    async def send(self, message: EmailMessage, accepted: Callable[[], Awaitable[None]] | None = None) -> None:
        """:func:`deliver` ``message`` to the server."""
        await deliver(message, self.target, self.timeout_s, accepted=accepted)
