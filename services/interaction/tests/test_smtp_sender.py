"""Delivery over a real SMTP server on loopback (the sink)."""

import email
import re
from email import policy

import pytest

from ecrm_interaction.delivery.smtp_sender import SmtpTarget, compose, deliver
from ecrm_interaction.engine.rendering import RenderedEmail

pytestmark = pytest.mark.smtp


def test_smtp_url_parsing() -> None:
    t = SmtpTarget.from_url("smtps://user%40x:p%3Ass@mail.example.com")
    assert (t.host, t.port, t.username, t.password, t.implicit_tls) == ("mail.example.com", 465, "user@x", "p:ss", True)
    assert SmtpTarget.from_url("smtp://127.0.0.1:1025").port == 1025
    with pytest.raises(ValueError):
        SmtpTarget.from_url("http://x")


async def test_multipart_message_arrives(smtp_sink) -> None:
    rendered = RenderedEmail(subject="Welcome, Ada", text="Hello Ada", html="<p>Hello Ada</p>")
    message = compose(rendered, sender="shop@example.com", recipient="ada@example.com", send_id="s-1", rule_id="r")
    await deliver(message, SmtpTarget.from_url(smtp_sink.url), timeout_s=5)
    [path] = smtp_sink.messages()
    received = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert received["Subject"] == "Welcome, Ada" and received["To"] == "ada@example.com"
    assert received["X-ECRM-Send-Id"] == "s-1"
    assert received.get_body(("plain",)).get_content().strip() == "Hello Ada"
    assert received.get_body(("html",)).get_content().strip() == "<p>Hello Ada</p>"


def header_lines(raw: bytes, name: str) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for start, line in enumerate(head):
        if line.lower().startswith(name.lower().encode() + b":"):
            end = start + 1
            while end < len(head) and head[end][:1] in (b" ", b"\t"):
                end += 1
            return head[start:end]
    raise AssertionError(f"no {name} header")


@pytest.mark.parametrize("token_length", [20, 400, 900])
async def test_list_unsubscribe_is_plain_and_folds_only_at_commas(smtp_sink, token_length) -> None:
    url = "https://shop.example.com/u/" + "A" * token_length
    mailto = "unsubscribe@example.com?subject=unsubscribe%20" + "B" * token_length
    message = compose(
        RenderedEmail("News", "Hello", None),
        sender="Shop <shop@example.com>",
        recipient="ada@example.com",
        send_id="s-1",
        rule_id="r",
        unsubscribe_url=url,
        unsubscribe_mailto=mailto,
    )
    await deliver(message, SmtpTarget.from_url(smtp_sink.url), timeout_s=5)
    [path] = smtp_sink.messages()
    raw = path.read_bytes()
    lines = header_lines(raw, "List-Unsubscribe")
    assert b"=?" not in b"".join(lines)
    assert all(len(line) <= 998 for line in lines)
    assert all(line.endswith(b",") for line in lines[:-1])  # folded only after a comma
    unfolded = b"".join(lines)  # unfolding removes the line breaks, nothing else
    assert re.fullmatch(rb"List-Unsubscribe: <[^<>\s]+>,\s*<[^<>\s]+>", unfolded), unfolded
    assert re.findall(rb"<([^<>]+)>", unfolded) == [url.encode(), f"mailto:{mailto}".encode()]
    assert header_lines(raw, "List-Unsubscribe-Post") == [b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"]


def test_the_unsubscribe_mailbox_and_providers_settings() -> None:
    from pydantic import ValidationError

    from ecrm_interaction.settings import InteractionSettings

    assert InteractionSettings(email_from="Shop <news@shop.example>").unsubscribe_mailbox == "unsubscribe@shop.example"
    assert InteractionSettings(interaction_unsubscribe_mailbox="leave@shop.example").unsubscribe_mailbox == (
        "leave@shop.example"
    )
    assert InteractionSettings(interaction_unsubscribe_mailbox="off").unsubscribe_mailbox is None
    assert InteractionSettings(interaction_email_providers="Mailgun, ses").email_providers == ("ses", "mailgun")
    assert InteractionSettings().email_providers == ()
    with pytest.raises(ValidationError, match="unknown email provider postmark"):
        InteractionSettings(interaction_email_providers="sendgrid,postmark")
    with pytest.raises(ValidationError, match="bare address"):
        InteractionSettings(interaction_unsubscribe_mailbox="<x@y>")
