"""The SMTP shell: build the MIME message and hand it to the mail server (aiosmtplib)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import re
from email import policy as email_policy
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

import aiosmtplib

from ecrm_interaction.rendering import RenderedEmail


class ListHeader(UnstructuredHeader):
    """An RFC 2369 list header (``List-Unsubscribe``): ``<URL>`` items, never RFC 2047-encoded.

    Mail clients read these headers as they are: an encoded word (``=?utf-8?q?=3Chttps...``)
    is not a URL to them, so one-click unsubscribe would not work. The standard folding
    encodes a long word it cannot break; this header folds only after the commas between
    items, which RFC 2369 allows, and keeps each ``<URL>`` whole on its line.
    """

    max_count = 1
    _ITEM = re.compile(r"<[^<>\s]+>")

    def fold(self, *, policy: Policy) -> str:
        items = self._ITEM.findall(str(self))
        if not items or not str(self).isascii():
            raise ValueError(f"{self.name} must be ASCII <URL> items separated by commas")
        separator = "," + policy.linesep + " "
        return f"{self.name}: {separator.join(items)}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", ListHeader)
MAIL_POLICY = email_policy.SMTP.clone(header_factory=_HEADERS)
"""Python's SMTP policy, with the RFC 2369 list headers folded as :class:`ListHeader` says."""


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
) -> EmailMessage:
    """A multipart (text, and HTML when the template has it) message.

    Its Message-ID derives from ``send_id``, so a message sent again after a crash carries the
    same id. With ``unsubscribe_url``, RFC 8058 one-click unsubscribe headers are added
    (``List-Unsubscribe`` with the https link, and the mailto when given, plus
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``).
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
        message["List-Unsubscribe"] = ",".join(targets)
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
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
