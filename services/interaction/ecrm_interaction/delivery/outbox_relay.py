"""The outbox relay: reports on the events topic what the service decided and changed.

Each :meth:`OutboxRelay.publish` takes a batch of final action decisions (``Email Sent``,
``Message Suppressed`` …; see :func:`decision_event`) and a batch of outbox events (cases,
loyalty balances, written in the transaction of their change), reads the customers they name
and the balances they report in one query each, produces them (each through the collector's
validation gate), waits for the broker's acknowledgement, then marks the batch published in
one transaction. Once each, retried until acknowledged; a row the gate refuses is logged and
left unpublished without holding the others back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import structlog

import ecrm_schemas.email_tags as email_tags
from ecrm_interaction.delivery.actions import REGISTRY
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_interaction.engine.triggers import OWN_EVENTS
from ecrm_interaction.storage import actions as action_rows
from ecrm_interaction.storage import loyalty, outbox
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import Action, OutboxEvent
from ecrm_interaction.storage.store import aware
from ecrm_schemas.actions import ActionKind, ActionStatus
from ecrm_schemas.builders import build_alias, track_body
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.events import AliasEvent, Event, encode_event
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.own_events import own_event_headers
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.validation import InvalidEvent, validate_event

if TYPE_CHECKING:
    from ecrm_interaction.storage.store import Store

log = structlog.get_logger()
LIBRARY = "ecrm-interaction"
"""How the service names itself in its events' ``context.library``."""
KINDS = frozenset(kind.value for kind in ActionKind)
Profiles = dict[str, dict[str, Any]]
"""Stored profiles by customer id (:func:`ecrm_interaction.storage.outbox.stored_profiles`)."""


def decision_event(action: Action) -> tuple[str, str, str, dict[str, Any], datetime]:
    """The event that reports ``action``'s outcome: (name, customer, message id, properties, time)."""
    payload = orjson.loads(action.payload) if action.payload else {}
    spec = payload.get("action") or {}
    at = aware(action.done_at or action.updated_at) or datetime.now(UTC)
    executor = REGISTRY.get(ActionKind(action.kind)) if action.kind in KINDS else None
    base = {
        "decision_id": action.id,
        "rule_id": action.rule_id,
        "action": action.kind,
        "channel": executor.channel if executor is not None else None,
    }
    message_id = f"{OWN_EVENTS}{action.id}-{action.status}"
    name: str
    if action.status in (ActionStatus.SUPPRESSED, ActionStatus.CANCELLED):
        name, props = CatalogEvent.MESSAGE_SUPPRESSED, {**base, "reason": action.reason or action.status}
    elif action.status == ActionStatus.DEFERRED:
        until = aware(action.due_at) or at
        name, props = (
            CatalogEvent.MESSAGE_DEFERRED,
            {**base, "until": until.isoformat(), "reason": action.reason or "deferred"},
        )
    elif action.status == ActionStatus.FAILED or executor is None:
        name, props = CatalogEvent.MESSAGE_FAILED, {**base, "reason": action.reason or "failed"}
    else:
        name, props = executor.completed(action, spec, base)
    return name, action.customer_id, message_id, props, at


def identity(profiles: Profiles, customer_id: str) -> dict[str, str]:
    """How events name the customer: ``{"userId": …}``, or ``{"anonymousId": …}`` when that is all we know."""
    profile = profiles.get(customer_id) or {}
    if profile.get("user_id") or not profile:
        return {"userId": profile.get("user_id") or customer_id}
    return {"anonymousId": customer_id}


def track_event(
    name: str, customer: dict[str, str], message_id: str, properties: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """A track event about the customer (named by :func:`identity`); :meth:`OutboxRelay._send` validates it."""
    body = track_body(name, customer, properties, library=LIBRARY, message_id=message_id, timestamp=at)
    return {**body, "receivedAt": datetime.now(UTC).isoformat()}


def address_link(action: Action, customer: dict[str, str]) -> AliasEvent | None:
    """After a send to a known user, ``alias`` the address's id (``email:<sha256>``) to them.

    An ESP event without our tags names only the recipient address, and the collector
    gives it that id: the aggregator's identity stitching (merge guard included: an
    address already linked to another user stays theirs) then folds the bounce,
    complaint or open into the user who was sent the message, and the contact policy
    sees it. Anonymous customers are not linked: an alias would make their id look
    like a user id and block their own identify later.
    """
    if action.kind != ActionKind.EMAIL or action.status != ActionStatus.SENT or not action.recipient:
        return None
    if "userId" not in customer:
        return None
    at = aware(action.done_at or action.updated_at) or datetime.now(UTC)
    address = email_tags.address_anonymous_id(action.recipient)
    return build_alias(address, customer["userId"], library=LIBRARY, message_id=f"{OWN_EVENTS}{action.id}-address",
                       timestamp=at)  # fmt: skip


def outbox_event(
    row: OutboxEvent, profiles: Profiles, balances: dict[str, int], program: LoyaltyProgram | None, now: datetime
) -> dict[str, Any]:
    """The event of an outbox row. A ``Loyalty Points Awarded`` row carries the customer's balance
    and tier as of now, stamped now: whatever order the events arrive in, the latest one the
    aggregator folds says the ledger's balance."""
    properties = orjson.loads(row.properties)
    customer = identity(profiles, row.customer_id)
    if row.name == CatalogEvent.LOYALTY_POINTS_AWARDED:
        assert program is not None
        balance = max(balances.get(row.customer_id, 0), 0)
        properties = {**properties, "balance": balance, "tier": tier_of(balance, program)}
        return track_event(row.name, customer, row.message_id, properties, now)
    return track_event(row.name, customer, row.message_id, properties, aware(row.created_at) or now)


class RelayBatch(NamedTuple):
    actions: list[Action]
    """Final decisions not reported yet."""
    rows: list[OutboxEvent]
    """Outbox events not published yet."""
    profiles: Profiles
    """The stored profiles of the customers they name."""
    balances: dict[str, int]
    """The loyalty balances the ``Loyalty Points Awarded`` rows report."""


class OutboxRelay:
    def __init__(self, store: Store, producer: ReliableProducer | None, batch: int = 500) -> None:
        self.store, self.producer, self.batch = store, producer, batch

    def publish(self) -> None:
        """Report a batch of final decisions and of the outbox's events; see the module's docstring."""
        if self.producer is None:
            return
        actions, rows, profiles, balances = self.read_batch()
        if not actions and not rows:
            return
        program = self.store.read(rule_store.loyalty_program) if rows else None
        now = datetime.now(UTC)
        published: list[tuple[str, str]] = []
        for action in actions:
            name, customer_id, message_id, properties, at = decision_event(action)
            customer = identity(profiles, customer_id)
            link = address_link(action, customer)
            if self._produce(track_event(name, customer, message_id, properties, at), action.id) and (
                link is None or self._produce(link, action.id)
            ):
                published.append((action.id, action.status))
        events = [row.id for row in rows if self._produce(outbox_event(row, profiles, balances, program, now), row.id)]
        self.producer.flush_or_raise(30)
        with self.store.sessions.begin() as session:
            action_rows.mark_published(session, published)
            outbox.mark_events_published(session, events, datetime.now(UTC))

    def read_batch(self) -> RelayBatch:
        """The next batch to publish, in four queries whatever its size."""
        with self.store.sessions() as session:
            actions = action_rows.unpublished(session, self.batch)
            rows = outbox.unpublished_events(session, self.batch)
            if not actions and not rows:
                return RelayBatch([], [], {}, {})
            profiles = outbox.stored_profiles(session, [a.customer_id for a in actions] + [r.customer_id for r in rows])
            balances = loyalty.balances(
                session, [r.customer_id for r in rows if r.name == CatalogEvent.LOYALTY_POINTS_AWARDED]
            )
        return RelayBatch(actions, rows, profiles, balances)

    def outbox_events(self, now: datetime) -> list[dict[str, Any]]:
        """The outbox's unpublished events as :meth:`publish` sends them (in order)."""
        with self.store.sessions() as session:
            rows = outbox.unpublished_events(session, self.batch)
            profiles = outbox.stored_profiles(session, [r.customer_id for r in rows])
            balances = loyalty.balances(
                session, [r.customer_id for r in rows if r.name == CatalogEvent.LOYALTY_POINTS_AWARDED]
            )
        program = self.store.read(rule_store.loyalty_program)
        return [outbox_event(row, profiles, balances, program, now) for row in rows]

    def report(self, name: str, customer_id: str, message_id: str, properties: dict[str, Any]) -> None:
        """Publish one event about a customer now (acknowledged before returning)."""
        if self.producer is None:
            return
        try:
            self.produce_event(name, customer_id, message_id, properties, datetime.now(UTC))
            self.producer.flush_or_raise(10)
        except Exception as exc:  # the database holds the truth; the event is informative
            log.error("report_failed", event=name, error=type(exc).__name__)

    def produce_event(
        self, name: str, customer_id: str, message_id: str, properties: dict[str, Any], at: datetime
    ) -> None:
        """Queue one event about a customer (the caller flushes); raises :class:`InvalidEvent`."""
        if self.producer is None:
            return
        with self.store.sessions() as session:
            profiles = outbox.stored_profiles(session, [customer_id])
        self._send(track_event(name, identity(profiles, customer_id), message_id, properties, at))

    def flush(self, timeout_s: float = 30) -> None:
        if self.producer is not None:
            self.producer.flush_or_raise(timeout_s)

    def _produce(self, event: dict[str, Any] | Event, row: str) -> bool:
        """Queue ``event``; False (logged) when the validation gate refuses it."""
        try:
            self._send(event)
        except InvalidEvent as exc:  # a kind or event the catalog does not know: tests/test_action_kinds.py
            name = event.get("event") or event.get("type") if isinstance(event, dict) else event.type
            log.error("relay_event_invalid", row=row, event=name,
                      errors=[e.as_dict() for e in exc.errors][:5])  # fmt: skip
            return False
        return True

    def _send(self, event: dict[str, Any] | Event) -> None:
        assert self.producer is not None
        valid = validate_event(event) if isinstance(event, dict) else event  # the same gate as the collector's
        # The header is the mark of the service's own events (ecrm_schemas.own_events): the
        # aggregator carries it into the profile change, and the engine never acts on them.
        headers = own_event_headers()
        self.producer.produce(EVENTS.name, encode_event(valid), key=valid.customer_key.encode(), headers=headers)
