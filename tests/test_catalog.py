"""The event catalog's owners agree: the registry names the contact-state events, and the
collector and the interaction service act on exactly those."""

from datetime import UTC, datetime

from ecrm_collector.ingest import plan_ingest
from ecrm_interaction.consumer.intake import contact_changes
from ecrm_schemas.catalog import CATALOG, CONTACT_STATE_EVENTS
from ecrm_schemas.profile import TriggerEvent

NOW = datetime(2026, 11, 20, tzinfo=UTC)
CHANGING_PROPERTIES = {"bounce_type": "hard", "granted": False, "channel": "email", "email_id": "m1"}


def test_the_interaction_service_changes_contact_state_only_for_the_registrys_contact_state_events() -> None:
    acted_on = {
        name
        for name in CATALOG
        if contact_changes(
            TriggerEvent(message_id="m", type="track", event=name, timestamp=NOW, properties=CHANGING_PROPERTIES)
        )
    }
    assert acted_on == CONTACT_STATE_EVENTS, (
        "an event the interaction service treats as a contact-state change must be flagged contact_state in "
        "schemas/ecrm_schemas/catalog.py, or a browser key could send it"
    )


def test_the_collector_refuses_every_contact_state_event_from_a_browser_key() -> None:
    events = [{"type": "track", "userId": "u", "event": name} for name in sorted(CONTACT_STATE_EVENTS)]
    plan = plan_ingest(events, received_at=NOW, source="t", max_event_bytes=32_768, sender_kind="browser")
    assert [r.errors[0].rule for r in plan.rejected] == ["contact_state"] * len(CONTACT_STATE_EVENTS)


def test_the_catalog_document_is_current() -> None:
    from ecrm_embedded.catalog_doc import DEFAULT_PATH, render

    assert DEFAULT_PATH.exists(), "docs/catalog.md is missing: run `make catalog-doc`"
    assert DEFAULT_PATH.read_text() == render(), (
        "docs/catalog.md is stale (the event catalog, survey fields, provider mapping or computed traits "
        "changed): run `make catalog-doc` and commit it"
    )


def test_the_catalog_document_covers_every_event_field_provider_and_trait() -> None:
    from ecrm_aggregator.computed_traits import TraitPolicy
    from ecrm_collector.surveys import FORM_FIELDS
    from ecrm_embedded.catalog_doc import render

    document = render()
    for name, entry in CATALOG.items():
        assert f"### {name}\n" in document
        for prop in entry.properties.model_fields:
            assert f"| `{prop}` |" in document, (name, prop)
    assert all(f"| `{field}` |" in document for field in FORM_FIELDS)
    assert all(f"| `{parameter}` |" in document for parameter in TraitPolicy.__dataclass_fields__)
    for provider in ("SendGrid", "Mailgun", "Amazon SES"):
        assert f"| {provider} | " in document
    assert "| SendGrid | `bounce` | `Email Bounced` (`bounce_type` hard) |" in document
    assert "| Amazon SES | `Bounce` (Transient) | `Email Bounced` (`bounce_type` soft) |" in document


def test_the_pipelines_own_message_ids_use_the_reserved_prefixes() -> None:
    from ecrm_collector.esp_webhooks import mailgun_events, sendgrid_events, ses_message_events
    from ecrm_interaction.engine.triggers import OWN_EVENTS
    from ecrm_schemas.events import RESERVED_MESSAGE_ID_PREFIXES

    ids = [OWN_EVENTS + "x"]
    ids += [e["messageId"] for e in sendgrid_events([{"event": "delivered", "email": "r@example.com"}]).events]
    ids += [e["messageId"] for e in mailgun_events({"event": "delivered", "recipient": "r@example.com"}).events]
    record = {"eventType": "Delivery", "mail": {}, "delivery": {"recipients": ["r@example.com"]}}
    ids += [e["messageId"] for e in ses_message_events(record, sns_message_id="m").events]
    assert len(ids) == 4 and all(i.startswith(RESERVED_MESSAGE_ID_PREFIXES) for i in ids), ids


def test_every_writer_of_the_events_topic_is_one_that_checks_the_sender() -> None:
    """The interaction service acts on any contact-state event it reads, so every path onto
    ``ecrm.events`` must be the collector's (which refuses them from browser keys, also on
    replay) or the pipeline's own. A new writer must enforce the same rule before joining."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    produces = re.compile(r"produce\w*\(\s*EVENTS\.name|\(EVENTS\.name, [\w.]*key")  # a call, or a (topic, key, value)
    trusted = {
        "services/collector/ecrm_collector/gateway.py": "ingest: plan_ingest with the sender's kind",
        "services/collector/ecrm_collector/dead_letter_topic.py": "DLQ replay: plan_replay under the sender's rules",
        "services/collector/ecrm_collector/routes/admin.py": "chosen dead letters replayed: plan_replay as above",
        "services/interaction/ecrm_interaction/delivery/outbox_relay.py": "the interaction service's own reports",
    }
    writers = {
        str(path.relative_to(root))
        for path in (root / "services").glob("*/ecrm_*/**/*.py")
        if produces.search(path.read_text())
    }
    assert writers == set(trusted), f"producers to ecrm.events changed: {writers ^ set(trusted)}"
