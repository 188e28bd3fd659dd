"""A template rendered for a customer, as their email would be, without sending it (the
editor's preview), or sent once to an address of the marketer's choosing (a test send).

The context is the customer's stored profile, segments and loyalty standing, as a rule's
email sees it (:func:`ecrm_interaction.engine.rendering.message_context`), with ``reason``
``preview``, no triggering event, no recommendations and a placeholder unsubscribe link.
A test send goes through the SMTP sender the dispatcher uses, marked ``X-ECRM-Test`` and with
``[Test]`` before the subject; it is no action of a rule: no contact policy applies, no frequency
cap counts it, no tracking links or provider tags are added, so none of its events is the rule's.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from ecrm_interaction.delivery.smtp_sender import Mailer, SmtpTarget, compose
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.rendering import RenderedEmail, message_context, render_email
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import loyalty, rules
from ecrm_interaction.storage.facts import facts_of

PREVIEW_UNSUBSCRIBE_URL = "https://unsubscribe.invalid/preview"
"""What ``unsubscribe_url`` is in a preview or a test send (never a working link for the customer)."""
TEST_HEADER = "X-ECRM-Test"


def preview_context(session: Session, customer_id: str) -> dict[str, Any]:
    """What a template sees for this customer (a customer not seen yet has only an id)."""
    profile, segments, _consent = facts_of(session, customer_id)
    points = loyalty.balance(session, customer_id)
    payload = {
        "profile": profile or {"customer_id": customer_id},
        "reason": "preview",
        "rule_name": "preview",
        "segments": sorted(segments),
    }
    standing = {"points": points, "tier": tier_of(points, rules.loyalty_program(session))}
    return message_context(payload, rule_id="preview", loyalty=standing, unsubscribe_url=PREVIEW_UNSUBSCRIBE_URL)


def preview(session: Session, template: TemplateSpec, customer_id: str) -> RenderedEmail:
    """``template`` rendered for the customer; raises :class:`~ecrm_interaction.engine.rendering.RenderError`."""
    return render_email(template, preview_context(session, customer_id))


async def test_send(settings: InteractionSettings, rendered: RenderedEmail, to: str) -> str:
    """Send ``rendered`` to ``to`` as a test; its send id (``test-…``). Raises the SMTP error."""
    send_id = f"test-{uuid.uuid4()}"
    marked = RenderedEmail(f"[Test] {rendered.subject}", rendered.text, rendered.html)
    mailer = Mailer(SmtpTarget.from_url(settings.smtp_url), settings.smtp_timeout_s, settings.email_from)
    message = compose(marked, sender=mailer.sender, recipient=to, send_id=send_id, rule_id="test",
                      headers={TEST_HEADER: "1"})  # fmt: skip
    await mailer.send(message)
    return send_id
