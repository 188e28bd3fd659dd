"""Consent per channel and purpose, recorded from events (``Consent Updated``) and enforced
by the contact policy before marketing; the API's side is in ``test_api.py``."""

from datetime import timedelta

import pytest
from interaction_factories import T0, change, trigger

from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.engine.contact_policy import Contact, History, PolicySettings, decide
from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage.contacts import contact as contact_of
from ecrm_interaction.storage.store import Store

NO_QUIET_HOURS = PolicySettings(caps=(), quiet_start=T0.time(), quiet_end=T0.time())


@pytest.fixture
def store(relational_store):
    return relational_store


def _consent_event(store: Store, minutes: int, granted: bool, purpose: str = "marketing", channel: str = "email"):
    """A ``Consent Updated`` event folded into a profile change, as the aggregator sends it."""
    event = trigger("track", "Consent Updated", message_id=f"c{minutes}{purpose}", at=T0 + timedelta(minutes=minutes),
                    channel=channel, granted=granted, purpose=purpose)  # fmt: skip
    with store.sessions.begin() as session:
        IntakeStep(store, "secret").profile_change(session, change(event), [], LoyaltyProgram(), T0, Intake())


def _verdict(store: Store, category: str = "marketing") -> str:
    row = store.read(contact_of, "u1")
    contact = Contact(row.email, consent=row.consent.get("email"), unsubscribed=row.unsubscribed)
    verdict = decide(contact, History(), category, None, T0 + timedelta(hours=2), NO_QUIET_HOURS)  # type: ignore[arg-type]
    return f"{verdict.outcome}:{verdict.reason}"


def test_consent_from_events_is_kept_per_purpose_and_enforced_before_marketing(store) -> None:
    _consent_event(store, 0, granted=True)
    assert _verdict(store) == "send:allowed"

    _consent_event(store, 10, granted=False)  # withdrawn for marketing email
    assert store.read(contact_of, "u1").consent == {"email": False}
    assert _verdict(store) == "suppress:no_consent"
    assert _verdict(store, "transactional") == "send:allowed", "an order confirmation needs no marketing consent"

    _consent_event(store, 20, granted=True, purpose="profiling")  # another purpose: marketing stays withdrawn
    _consent_event(store, 25, granted=True, channel="sms")
    assert _verdict(store) == "suppress:no_consent"
    assert {(c.channel, c.purpose, c.granted) for c in store.read(customer_store.consents, "u1")} == {
        ("email", "marketing", False), ("email", "profiling", True), ("sms", "marketing", True)
    }  # fmt: skip

    _consent_event(store, 5, granted=True)  # an older event arriving late changes nothing
    assert _verdict(store) == "suppress:no_consent"

    _consent_event(store, 30, granted=True)
    assert _verdict(store) == "send:allowed"
