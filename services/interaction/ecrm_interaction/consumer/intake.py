"""What the consumer does with each profile change and segment change, in one transaction.

    ProfileChanged ─▶ [store the profile] ─▶ contact_changes ─▶ [unsubscribe, suppress, consent]
                   ─▶ [cancel waits its events cancel] ─▶ loyalty.earned ─▶ [ledger]
                   ─▶ event / trait / loyalty firings ─▶ planning.plan ─▶ [actions]
                   ─▶ [cancel the new waits that a later event of the same change cancels]
    SegmentMembershipChanged ─▶ [membership] ─▶ segment firings ─▶ planning.plan ─▶ [actions]

Bracketed steps write through the store's session; the rest is pure. Nothing here talks to
SMTP or the network: the dispatcher carries the actions out, so a mail outage never stops
the consumer, and the Kafka offsets are committed once the transaction is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from sqlalchemy.orm import Session

from ecrm_interaction import metrics
from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.loyalty import earned, tier_of
from ecrm_interaction.engine.planning import plan
from ecrm_interaction.engine.rules import EventMatch, LoyaltyProgram, RuleSpec
from ecrm_interaction.engine.triggers import (
    Firing,
    event_firings,
    is_own,
    loyalty_firings,
    segment_firings,
    trait_firings,
    wait_cancelled_by,
)
from ecrm_interaction.storage.store import Store
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.profile import ProfileChanged, TriggerEvent
from ecrm_schemas.segments import SegmentMembershipChanged

log = structlog.get_logger()
PROFILE_MERGED = "profile_merged"
"""Why the open actions of an anonymous profile are cancelled once it is merged into a user's."""


@dataclass(frozen=True, slots=True)
class ContactChange:
    kind: str
    """``unsubscribed``, ``hard_bounce``, ``complaint`` or ``consent``."""
    at: datetime
    channel: str = "email"
    granted: bool = False
    purpose: str = "marketing"
    source: str = "event"
    email_id: str | None = None
    """For a bounce or a complaint: the message it is about (its recipient is the address)."""


def contact_changes(trigger: TriggerEvent) -> list[ContactChange]:
    """What an event says about reaching the customer (pure)."""
    if trigger.type != "track" or is_own(trigger):
        return []
    props, at = trigger.properties, trigger.timestamp
    if trigger.event == CatalogEvent.UNSUBSCRIBED:
        return [ContactChange("unsubscribed", at)]
    source = f"event:{trigger.event}:{trigger.message_id}"
    email_id = str(props["email_id"]) if props.get("email_id") else None
    if trigger.event == CatalogEvent.EMAIL_BOUNCED and props.get("bounce_type") == "hard":
        return [ContactChange("hard_bounce", at, source=source, email_id=email_id)]
    if trigger.event == CatalogEvent.EMAIL_MARKED_AS_SPAM:
        # The address complained (the mailbox provider's feedback loop names it), and so did the
        # person: no more marketing to them at any address until they opt in again.
        return [ContactChange("complaint", at, source=source, email_id=email_id), ContactChange("unsubscribed", at)]
    if trigger.event == CatalogEvent.CONSENT_UPDATED and isinstance(props.get("granted"), bool):
        return [
            ContactChange(
                "consent",
                at,
                str(props.get("channel", "email")),
                props["granted"],
                str(props.get("purpose", "marketing")),
                str(props.get("source") or "event"),
            )
        ]
    return []


@dataclass(slots=True)
class Intake:
    """The outcome of one batch, for metrics and tests."""

    planned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    points: int = 0


class IntakeStep:
    def __init__(self, store: Store, reward_secret: str) -> None:
        self.store, self.secret = store, reward_secret

    def profile_change(
        self,
        session: Session,
        change: ProfileChanged,
        rules: list[RuleSpec],
        program: LoyaltyProgram,
        now: datetime,
        outcome: Intake,
        waiting: set[str] | None = None,
    ) -> None:
        """``waiting``: the customers of the batch who may have waiting actions (``None``: ask the
        store for each); a customer this change plans for is added to it."""
        customer = change.customer_id
        profile = change.profile.model_dump(mode="json")
        timezone = (profile.get("traits") or {}).get("timezone")
        self.store.upsert_customer(
            session,
            customer,
            profile,
            change.profile.version,
            change.profile.email,
            timezone if isinstance(timezone, str) else None,
        )
        if change.profile.merged_into is not None:
            # An anonymous visitor stitched to a user: the user's own change carries the same
            # events and acts on them. Nothing acts on the anonymous id any more.
            outcome.cancelled += self.store.cancel_customer_actions(session, customer, PROFILE_MERGED, now)
            return
        for trigger in change.triggers:
            for update in contact_changes(trigger):
                self._apply_contact(session, customer, update)

        own_causes = {f"m:{trigger.message_id}" for trigger in change.triggers}

        def cancelling(cancel_on: list[dict[str, Any]], cause: str, *, planned_before: bool = True) -> str | None:
            if not planned_before and cause not in own_causes:
                return None
            matches = [EventMatch.model_validate(m) for m in cancel_on]
            if (trigger := wait_cancelled_by(matches, change, cause)) is not None:
                return f"wait cancelled by {trigger.event or trigger.type} ({trigger.message_id})"
            return None

        # Waits planned before this change first, so a cancelled one does not hold back the same
        # rule now (cooldown); the waits this change plans are checked once they are planned.
        if waiting is None or customer in waiting:
            outcome.cancelled += self.store.cancel_waiting(session, customer, cancelling, now)
        earnings = [
            (trigger, points)
            for trigger in change.triggers
            if not is_own(trigger) and (points := earned(trigger, program)) is not None
        ]
        # The balance is read only when it can have changed or a rule needs it (most changes: neither).
        before = after = None
        if earnings:
            before = after = self.store.balance(session, customer)
            for trigger, points in earnings:
                added = self.store.add_points(
                    session, customer, points[0], points[1], f"loyalty:{customer}:{trigger.message_id}", None, now
                )
                if added is not None:
                    outcome.points += added
                    after += added
        firings = event_firings(change, rules) + trait_firings(change, rules)
        if before is not None and after is not None and after != before and not change.backfill:
            previous = {"points": before, "tier": tier_of(before, program)}
            current = {"points": after, "tier": tier_of(after, program)}
            cause = change.triggers[-1].message_id if change.triggers else str(change.profile.version)
            firings += loyalty_firings(rules, customer, previous, current, cause)
        if firings:
            if after is None:
                after = self.store.balance(session, customer)
            loyalty = {"points": after, "tier": tier_of(after, program)}
            _, segments, consent = self.store.facts_of(session, customer)
            self._plan(session, firings, Facts(profile, segments, consent, loyalty), now, outcome)
            if waiting is not None:
                waiting.add(customer)
            if any(f.rule.wait is not None and f.rule.wait.cancel_on and f.cause in own_causes for f in firings):
                # A "buy now": the order that ends the cart's wait came in the same change.
                outcome.cancelled += self.store.cancel_waiting(
                    session, customer, partial(cancelling, planned_before=False), now
                )

    def segment_change(
        self,
        session: Session,
        change: SegmentMembershipChanged,
        rules: list[RuleSpec],
        program: LoyaltyProgram,
        now: datetime,
        outcome: Intake,
    ) -> None:
        member = change.type == "segment.entered"
        self.store.set_segment(session, change.customer_id, change.segment_id, change.segment_name, member, change.at)
        firings = segment_firings(change, rules)
        if firings:
            profile, segments, consent = self.store.facts_of(session, change.customer_id)
            if profile is not None and profile.get("merged_into"):
                return  # a visitor stitched to a user: the user's own segment changes count
            points = self.store.balance(session, change.customer_id)
            loyalty = {"points": points, "tier": tier_of(points, program)}
            facts = Facts(profile or {"customer_id": change.customer_id}, segments, consent, loyalty)
            self._plan(session, firings, facts, now, outcome)

    def plan_firings(
        self, session: Session, firings: list[Firing], facts: Facts, now: datetime, outcome: Intake
    ) -> None:
        self._plan(session, firings, facts, now, outcome)

    def _plan(self, session: Session, firings: list[Firing], facts: Facts, now: datetime, outcome: Intake) -> None:
        for firing in firings:
            last = self.store.rule_last_acted(session, firing.rule.id, firing.customer_id)
            result = plan(firing, facts, now, last, self.secret)
            if result.skipped is not None:
                kind = result.skip_reason or result.skipped.partition(":")[0]
                outcome.skipped[kind] = outcome.skipped.get(kind, 0) + 1
                metrics.DECISIONS.labels("skipped", kind).inc()
                self.store.record_skip(
                    session, firing.rule.id, firing.customer_id, kind, result.skipped, firing.cause, now
                )
                continue
            added = self.store.add_actions(session, result.actions, now)
            outcome.planned += added
            metrics.DECISIONS.labels("planned", firing.rule.trigger.kind).inc(added)

    def _apply_contact(self, session: Session, customer: str, update: ContactChange) -> None:
        if update.kind == "unsubscribed":
            self.store.mark_unsubscribed(session, customer, update.at)
        elif update.kind in ("hard_bounce", "complaint"):
            # The address the message went to, else the customer's address now.
            address = (update.email_id and self.store.recipient_of(session, update.email_id)) or (
                self.store.current_email(session, customer)
            )
            if address:
                self.store.mark_suppressed(session, address, update.kind, update.source, update.at)
            else:
                log.warning("suppression_without_address", reason=update.kind, source=update.source)
        else:
            self.store.set_consent(
                session, customer, update.channel, update.granted, update.purpose, update.source, update.at
            )
