"""A broadcast's messages name their broadcast and A/B variant in every event they cause (sent,
opened, clicked, the providers' events), so the campaign report counts them per broadcast and
variant; a rule's messages name their rule only."""

from __future__ import annotations

import orjson

from ecrm_collector.email_tracking import open_event
from ecrm_interaction.delivery.actions.email import EmailExecutor, broadcast_of
from ecrm_interaction.storage.models import Action
from ecrm_schemas import email_tags
from ecrm_schemas.tracking import TrackingToken, sign, verify


def _action(cause: str, payload: dict) -> Action:
    return Action(id="m-1", dedup_key="k", rule_id=None, customer_id="c1", kind="email", category="marketing",
                  cause=cause, status="sent", payload=orjson.dumps(payload).decode())  # fmt: skip


def test_a_broadcast_message_carries_its_broadcast_and_variant() -> None:
    action = _action("b:bc-1", {"broadcast": {"id": "bc-1", "variant": "B"}})
    assert broadcast_of(action) == ("bc-1", "B")
    name, properties = EmailExecutor.completed(action, {"template": "news"}, {})
    assert name == "Email Sent" and properties["campaign_id"] == "bc-1" and properties["variant"] == "B"
    token = verify(sign(TrackingToken(email_id="m-1", customer="c1", campaign_id="bc-1", variant="B"), "s"), "s")
    opened = open_event(token, machine_open=False, user_agent=None)
    assert opened["properties"]["campaign_id"] == "bc-1" and opened["properties"]["variant"] == "B"
    assert email_tags.message_tags("m-1", campaign_id="bc-1")[email_tags.CAMPAIGN_ID] == "bc-1"


def test_a_rule_message_names_no_broadcast() -> None:
    action = _action("r:welcome", {"rule_name": "Welcome"})
    assert broadcast_of(action) == (None, None)
    _name, properties = EmailExecutor.completed(action, {"template": "welcome"}, {})
    assert "campaign_id" not in properties and "variant" not in properties
