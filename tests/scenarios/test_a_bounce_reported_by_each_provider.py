"""A bounce reported by each provider, for our own mail: a customer signs up, the welcome goes
out through the shop's email service provider (SendGrid, Amazon SES or Mailgun), the address
does not exist, and the provider reports the bounce to its signed webhook. The customer is
suppressed, and no further mail goes out to them, transactional mail included."""

from __future__ import annotations

from typing import Any

import pytest
from scenarios.users import AmazonSes, AnalyticsPython, InteractionApi, Mailbox, Mailgun, SendGrid, Shop, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]

PROVIDERS = {"sendgrid": SendGrid, "ses": AmazonSes, "mailgun": Mailgun}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_bounce_reported_by_each_provider(
    provider: str, shop: Shop, api: InteractionApi, mailbox: Mailbox, data_team: Any
) -> None:
    customer, address = f"bounce-{provider}", f"gone.{provider}@example.com"
    backend = AnalyticsPython(shop)
    backend.identify(customer, {"email": address, "firstName": "Gone"})
    assert backend.flush().status_code == 200
    welcome = mailbox.wait_for(address, "Welcome")[0]

    esp = PROVIDERS[provider](shop)
    reported = esp.bounce(welcome)
    assert (reported.status_code, reported.json()["accepted"]) == (200, 1), reported.text
    stored = eventually(lambda: data_team.rows(
        "SELECT customer_id FROM ecrm.events WHERE message_id = {m:String}", m=esp.last_message_id))  # fmt: skip
    assert stored, "the provider's bounce is stored"

    # Stored first, then folded and handed to the interaction service: a few seconds at most.
    suppressed = eventually(lambda: api.customer(customer)["contact"]["suppressed"], timeout_s=5)
    assert suppressed == "hard_bounce"

    backend.track(customer, "Order Completed", {"order_id": f"{customer}-o1", "total": 25, "currency": "EUR"})
    assert backend.flush().status_code == 200
    thanks = api.decision(customer, "thanks-for-order")
    assert (thanks["status"], thanks["reason"]) == ("suppressed", "hard_bounce"), thanks
    assert [m.subject for m in mailbox.messages_to(address)] == [welcome.subject]
    # The data team counts the bounce on the customer (the provider returned our tags).
    assert stored[0]["customer_id"] == customer, f"the bounce was attributed to {stored[0]['customer_id']}"


def test_a_bounce_for_an_unknown_message_is_kept_on_the_address(shop: Shop, data_team: Any) -> None:
    """Every provider's webhook is on and verifies its signature: a bounce of mail the shop sent
    with another tool is stored, keyed by the address."""
    from scenarios.users import Message

    raw = (b"X-Sink-Rcpt-To: stranger@example.com\r\nSubject: Newsletter\r\n"
           b"Message-ID: <other-tool-1@example.com>\r\n\r\nHi\r\n")  # fmt: skip
    message = Message(shop.mail_dir / "not-ours.eml", raw)
    for provider, esp_class in sorted(PROVIDERS.items()):
        esp = esp_class(shop)
        reported = esp.bounce(message)
        assert (reported.status_code, reported.json()["accepted"]) == (200, 1), (provider, reported.text)
        stored = eventually(lambda esp=esp: data_team.rows(  # type: ignore[misc]
            "SELECT anonymous_id FROM ecrm.events WHERE message_id = {m:String}", m=esp.last_message_id))  # fmt: skip
        assert stored and stored[0]["anonymous_id"].startswith("email:"), (provider, stored)


def test_a_customer_who_bounced_gets_mail_at_their_new_address(
    shop: Shop, api: InteractionApi, mailbox: Mailbox, data_team: Any
) -> None:
    customer, old, new = "bounce-moved", "gone.moved@example.com", "new.moved@example.com"
    backend = AnalyticsPython(shop)
    backend.identify(customer, {"email": old, "firstName": "Mo"})
    assert backend.flush().status_code == 200
    sendgrid = SendGrid(shop)
    assert sendgrid.bounce(mailbox.wait_for(old, "Welcome")[0]).status_code == 200
    assert eventually(lambda: api.customer(customer)["contact"]["suppressed"], timeout_s=8) == "hard_bounce"

    backend.identify(customer, {"email": new})
    backend.track(customer, "Order Completed", {"order_id": "moved-o1", "total": 25, "currency": "EUR"})
    assert backend.flush().status_code == 200
    thanks = api.decision(customer, "thanks-for-order")
    assert (thanks["status"], thanks["recipient"]) == ("sent", new), thanks
    assert mailbox.wait_for(new, "Thank you for your order moved-o1")
