"""Delivery over a real SMTP server on loopback (the sink)."""

import email
from email import policy

import pytest

from ecrm_interaction.rendering import RenderedEmail
from ecrm_interaction.smtp_sender import SmtpTarget, compose, deliver

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
