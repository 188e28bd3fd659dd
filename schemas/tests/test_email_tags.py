"""The tags of our outgoing mail, per provider (pure)."""

import json

from ecrm_schemas.email_tags import (
    MAILGUN_HEADER,
    SENDGRID_HEADER,
    SES_CONFIGURATION_SET_HEADER,
    SES_TAGS_HEADER,
    message_tags,
    provider_headers,
)


def test_each_configured_provider_gets_its_header_and_only_those() -> None:
    tags = message_tags("send-1", user_id="ada@example.com", rule_id="welcome")
    assert provider_headers(tags, ()) == {}
    headers = provider_headers(tags, ("sendgrid", "ses", "mailgun"), ses_configuration_set="ecrm-events")
    assert json.loads(headers[SENDGRID_HEADER]) == {"unique_args": tags}
    assert json.loads(headers[MAILGUN_HEADER]) == tags
    # SES carries only its alphabet: the e-mail address as user id is left out.
    assert headers[SES_TAGS_HEADER] == "ecrm_email_id=send-1, ecrm_rule_id=welcome"
    assert headers[SES_CONFIGURATION_SET_HEADER] == "ecrm-events"
    assert set(provider_headers(tags, ("mailgun",))) == {MAILGUN_HEADER}


def test_headers_are_ascii_whatever_the_ids() -> None:
    tags = message_tags("send-1", user_id="Zoë Müller")
    headers = provider_headers(tags, ("sendgrid", "mailgun"))
    assert all(value.isascii() for value in headers.values())
    assert json.loads(headers[MAILGUN_HEADER])["ecrm_user_id"] == "Zoë Müller"
