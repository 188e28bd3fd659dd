"""What the consumer does with a batch of profile changes and segment changes, in one transaction.

    ProfileChanged ─▶ [store the profile] ─▶ contact_changes ─▶ [unsubscribe, suppress, consent]
                   ─▶ [cancel waits its events cancel] ─▶ loyalty.earned ─▶ [ledger]
                   ─▶ event / trait / loyalty firings ─▶ planning.plan ─▶ [actions]
                   ─▶ [cancel the new waits that a later event of the same change cancels]
    SegmentMembershipChanged ─▶ [membership] ─▶ segment firings ─▶ planning.plan ─▶ [actions]

A batch is set-based, a fixed number of statements whatever its size: :func:`read` asks the
database once per kind of fact (customers, open actions, when each rule last acted, segments,
consents, balances, used ledger keys, recipients of bounced mail, suppressions), :class:`Batch`
applies the changes one after the other in memory (pure: the bracketed steps above change its
state, and a change sees what the changes before it did), and :func:`write` stores the outcome
with bulk upserts. The dedup keys of the actions planned are looked up once the batch is planned;
when some exist already (a redelivered batch), the batch is planned again knowing them.

Nothing here talks to SMTP or the network: the dispatcher carries the actions out, so a mail
outage never stops the consumer, and the Kafka offsets are committed once the transaction is.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

import orjson
import structlog
from sqlalchemy.orm import Session

from ecrm_interaction import metrics
from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.engine.loyalty import earned, tier_of
from ecrm_interaction.engine.planning import PlannedAction, plan, released_key, releases_once
from ecrm_interaction.engine.rules import EventMatch, LoyaltyProgram, RuleSpec
from ecrm_interaction.engine.triggers import (
    Firing,
    RuleIndex,
    event_firings,
    is_own,
    loyalty_firings,
    segment_firings,
    trait_firings,
    wait_cancelled_by,
)
from ecrm_interaction.storage import actions, customers, loyalty
from ecrm_interaction.storage.actions import NOT_ACTED, OPEN, ClosedAction, NewAction, OpenAction, Skip, new_action
from ecrm_interaction.storage.customers import ConsentRow, CustomerRow, SegmentRow, SuppressionRow
from ecrm_interaction.storage.loyalty import LedgerEntry
from ecrm_interaction.storage.store import MARKETING, Store
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.profile import CustomerProfile, ProfileChanged, TriggerEvent
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


@dataclass(frozen=True, slots=True)
class GivenFirings:
    """Firings decided elsewhere (a schedule, a tier crossed by a rule's points) on given facts."""

    firings: list[Firing]
    facts: Facts


Change = ProfileChanged | SegmentMembershipChanged | GivenFirings


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a change asks of the database, worked out before anything is read (pure)."""

    change: Change
    firings: list[Firing]
    """Event, trait and segment firings (loyalty firings need the balance: the batch finds them)."""
    contacts: list[list[ContactChange]]
    """Per trigger of a profile change, what it says about reaching the customer."""
    earnings: list[tuple[TriggerEvent, tuple[int, str]]]


def prepare(change: Change, rules: RuleIndex, program: LoyaltyProgram) -> Prepared:
    if isinstance(change, GivenFirings):
        return Prepared(change, change.firings, [], [])
    if isinstance(change, SegmentMembershipChanged):
        return Prepared(change, segment_firings(change, rules.rules), [], [])
    if change.profile.merged_into is not None:
        return Prepared(change, [], [], [])
    earnings = [
        (trigger, points)
        for trigger in change.triggers
        if not is_own(trigger) and (points := earned(trigger, program)) is not None
    ]
    contacts = [contact_changes(trigger) for trigger in change.triggers]
    candidates = rules.candidates(change)
    firings = event_firings(change, candidates) + trait_firings(change, candidates) if candidates else []
    return Prepared(change, firings, contacts, earnings)


def _customer_of(change: Change) -> list[str]:
    if isinstance(change, GivenFirings):
        return sorted({f.customer_id for f in change.firings})
    return [change.customer_id]


@dataclass(slots=True)
class Snapshot:
    """Everything the batch reads, read once (:func:`read`)."""

    customers: dict[str, CustomerRow] = field(default_factory=dict)
    open: list[OpenAction] = field(default_factory=list)
    last_acted: dict[tuple[str, str], datetime] = field(default_factory=dict)
    segments: dict[str, set[str]] = field(default_factory=dict)
    consents: dict[str, list[ConsentRow]] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    used_ledger_keys: set[str] = field(default_factory=set)
    recipients: dict[str, str] = field(default_factory=dict)
    suppressions: dict[str, SuppressionRow] = field(default_factory=dict)
    existing_action_keys: set[str] = field(default_factory=set)


def read(session: Session, prepared: Sequence[Prepared]) -> Snapshot:
    """One query per kind of fact for the whole batch."""
    everyone = {cid for p in prepared for cid in _customer_of(p.change)}
    deciding = {
        cid
        for p in prepared
        if not isinstance(p.change, GivenFirings)
        and (
            p.firings
            or p.earnings
            or isinstance(p.change, SegmentMembershipChanged)
            or any(c.kind == "consent" for cs in p.contacts for c in cs)
        )
        for cid in _customer_of(p.change)
    }
    given = {cid for p in prepared if isinstance(p.change, GivenFirings) for cid in _customer_of(p.change)}
    snapshot = Snapshot()
    # Profiles come in with their changes; a segment change that fires plans on the stored one.
    profiles_of = {p.change.customer_id for p in prepared if isinstance(p.change, SegmentMembershipChanged)
                   and p.firings}  # fmt: skip
    snapshot.customers = customers.read_customers(session, everyone, profiles_of)
    snapshot.open = actions.read_open(session, everyone)
    if deciding or given:
        snapshot.last_acted = actions.read_last_acted(session, deciding | given)
    if deciding:  # given firings come with their facts
        snapshot.segments = customers.read_segments(session, deciding)
        snapshot.consents = customers.read_consents(session, deciding)
        snapshot.balances = loyalty.read_balances(session, deciding)
    planned_keys = [f"{f.dedup_key}:{i}" for p in prepared for f in p.firings for i in range(len(f.rule.actions))]
    if planned_keys:
        snapshot.existing_action_keys = actions.existing_keys(session, planned_keys)
    keys = [
        f"loyalty:{p.change.customer_id}:{trigger.message_id}"
        for p in prepared
        if isinstance(p.change, ProfileChanged)
        for trigger, _ in p.earnings
    ]
    if keys:
        snapshot.used_ledger_keys = loyalty.used_keys(session, keys)
    bounces = [
        (p.change, c) for p in prepared for cs in p.contacts for c in cs if c.kind in ("hard_bounce", "complaint")
    ]
    if bounces:
        snapshot.recipients = actions.read_recipients(session, [c.email_id for _, c in bounces if c.email_id])
        addresses = set(snapshot.recipients.values())
        for change, _ in bounces:
            assert isinstance(change, ProfileChanged)
            stored = snapshot.customers.get(change.customer_id)
            addresses |= {a for a in (change.profile.email, stored.email if stored else None) if a}
        snapshot.suppressions = customers.read_suppressions(session, [address_digest(a) for a in addresses])
    return snapshot


@dataclass(slots=True)
class Writes:
    """What a planned batch stores (:func:`write`)."""

    profiles: list[CustomerRow] = field(default_factory=list)
    unsubscribed: list[tuple[str, datetime | None]] = field(default_factory=list)
    consents: list[ConsentRow] = field(default_factory=list)
    segments_entered: list[SegmentRow] = field(default_factory=list)
    segments_left: list[tuple[str, str]] = field(default_factory=list)
    suppressions_new: list[SuppressionRow] = field(default_factory=list)
    suppressions_renewed: list[SuppressionRow] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    actions: list[NewAction] = field(default_factory=list)
    closed: list[ClosedAction] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    attempted_keys: set[str] = field(default_factory=set)
    """Every dedup key planned, new or not (to look up once the batch is planned)."""
    planned_by_trigger: Counter[str] = field(default_factory=Counter)


def write(session: Session, writes: Writes) -> int:
    """Store a planned batch, a fixed number of statements; returns how many actions were new."""
    customers.write_profiles(session, writes.profiles)
    customers.write_unsubscribed(session, writes.unsubscribed)
    customers.write_consents(session, writes.consents)
    customers.write_segments(session, writes.segments_entered, writes.segments_left)
    customers.write_suppressions(session, writes.suppressions_new, writes.suppressions_renewed)
    loyalty.add_entries(session, writes.ledger)
    actions.close_actions(session, writes.closed)
    added = actions.insert_actions(session, writes.actions)
    actions.record_skips(session, writes.skips)
    return added


class Batch:
    """A batch's changes applied one after the other to what was read (pure: no I/O)."""

    def __init__(
        self, snapshot: Snapshot, rules: list[RuleSpec], program: LoyaltyProgram, now: datetime, secret: str
    ) -> None:
        self.rules, self.program, self.now, self.secret = rules, program, now, secret
        self.outcome = Intake()
        self.writes = Writes()
        self.customers = {cid: replace(row) for cid, row in snapshot.customers.items()}
        self.stored_customers = set(snapshot.customers)
        self.dirty_profiles: set[str] = set()
        self.undumped: dict[str, CustomerProfile] = {}
        self.unsubscribed: dict[str, datetime | None] = {}
        self.open: dict[str, list[OpenAction]] = {}
        for row in snapshot.open:
            self.open.setdefault(row.customer_id, []).append(replace(row))
        self.last_acted = snapshot.last_acted
        self.segments = {cid: set(s) for cid, s in snapshot.segments.items()}
        self.entered: dict[tuple[str, str], SegmentRow] = {}
        self.left: set[tuple[str, str]] = set()
        self.consents = {cid: {(c.channel, c.purpose): c for c in rows} for cid, rows in snapshot.consents.items()}
        self.consents_changed: dict[tuple[str, str, str], ConsentRow] = {}
        self.balances = dict(snapshot.balances)
        self.ledger_keys = set(snapshot.used_ledger_keys)
        self.recipients = snapshot.recipients
        self.suppressions = dict(snapshot.suppressions)
        self.suppressed_new: dict[str, SuppressionRow] = {}
        self.suppressed_renewed: dict[str, SuppressionRow] = {}
        self.taken_keys = set(snapshot.existing_action_keys)
        self.new_actions: dict[str, tuple[PlannedAction, OpenAction]] = {}
        self.closed: dict[str, ClosedAction] = {}
        self.cancel_on: dict[str, list[EventMatch]] = {}

    # --- the changes ------------------------------------------------------------------------

    def apply(self, prepared: Prepared) -> None:
        change = prepared.change
        if isinstance(change, GivenFirings):
            self._plan(change.firings, change.facts)
        elif isinstance(change, SegmentMembershipChanged):
            self._segment_change(change, prepared)
        else:
            self._profile_change(change, prepared)

    def _profile_change(self, change: ProfileChanged, prepared: Prepared) -> None:
        customer = change.customer_id
        self._store_profile(change)
        if change.profile.merged_into is not None:
            # An anonymous visitor stitched to a user: the user's own change carries the same
            # events and acts on them. Nothing acts on the anonymous id any more.
            self.outcome.cancelled += self._cancel_open(customer, PROFILE_MERGED)
            return
        for updates in prepared.contacts:
            for update in updates:
                self._apply_contact(customer, change, update)

        own_causes = {f"m:{trigger.message_id}" for trigger in change.triggers}

        def cancelling(cancel_on: list[EventMatch], cause: str, *, planned_before: bool = True) -> str | None:
            if not planned_before and cause not in own_causes:
                return None
            if (trigger := wait_cancelled_by(cancel_on, change, cause)) is not None:
                return f"wait cancelled by {trigger.event or trigger.type} ({trigger.message_id})"
            return None

        # Waits planned before this change first, so a cancelled one does not hold back the same
        # rule now (cooldown); the waits this change plans are checked once they are planned.
        self.outcome.cancelled += self._cancel_waiting(customer, cancelling)
        before = after = None
        if prepared.earnings:
            before = after = self.balances.get(customer, 0)
            for trigger, (points, reason) in prepared.earnings:
                added = self._add_points(customer, points, reason, f"loyalty:{customer}:{trigger.message_id}")
                if added is not None:
                    self.outcome.points += added
                    after += added
        firings = list(prepared.firings)
        if before is not None and after is not None and after != before and not change.backfill:
            previous = {"points": before, "tier": tier_of(before, self.program)}
            current = {"points": after, "tier": tier_of(after, self.program)}
            cause = change.triggers[-1].message_id if change.triggers else str(change.profile.version)
            firings += loyalty_firings(self.rules, customer, previous, current, cause)
        if firings:
            points = self.balances.get(customer, 0) if after is None else after
            loyalty_facts = {"points": points, "tier": tier_of(points, self.program)}
            facts = Facts(change.profile.model_dump(mode="json"), self._segments_of(customer),
                          self._consent_of(customer), loyalty_facts)  # fmt: skip
            self._plan(firings, facts)
            if any(f.rule.wait is not None and f.rule.wait.cancel_on and f.cause in own_causes for f in firings):
                # A "buy now": the order that ends the cart's wait came in the same change.
                self.outcome.cancelled += self._cancel_waiting(customer, partial(cancelling, planned_before=False))

    def _segment_change(self, change: SegmentMembershipChanged, prepared: Prepared) -> None:
        customer, key = change.customer_id, (change.customer_id, change.segment_id)
        segments = self.segments.setdefault(customer, set())
        if change.type == "segment.entered" and change.segment_id not in segments:
            segments.add(change.segment_id)
            self.entered[key] = SegmentRow(customer, change.segment_id, change.segment_name, change.at)
        elif change.type != "segment.entered" and change.segment_id in segments:
            segments.discard(change.segment_id)
            self.entered.pop(key, None)
            self.left.add(key)
        if not prepared.firings:
            return
        row = self._profile_of(customer)
        profile = orjson.loads(row.profile) if row is not None and row.profile else None
        if profile is not None and profile.get("merged_into"):
            return  # a visitor stitched to a user: the user's own segment changes count
        points = self.balances.get(customer, 0)
        loyalty_facts = {"points": points, "tier": tier_of(points, self.program)}
        facts = Facts(profile or {"customer_id": customer}, self._segments_of(customer), self._consent_of(customer),
                      loyalty_facts)  # fmt: skip
        self._plan(prepared.firings, facts)

    # --- customers and contact state --------------------------------------------------------

    def _store_profile(self, change: ProfileChanged) -> None:
        customer, profile = change.customer_id, change.profile
        timezone = profile.traits.get("timezone") if isinstance(profile.traits, dict) else None
        row = self.customers.get(customer)
        if row is None:
            row = CustomerRow(customer, None, -1, None, None, None)
            self.customers[customer] = row
        elif profile.version < row.profile_version:
            return
        # Dumped once the batch is planned (the customer's last version: busy customers change
        # many times a batch), or when a segment change of the batch reads it.
        row.profile, row.profile_version = None, profile.version
        self.undumped[customer] = profile
        row.email, row.timezone = profile.email, timezone if isinstance(timezone, str) else None
        self.dirty_profiles.add(customer)

    def _profile_of(self, customer: str) -> CustomerRow | None:
        row = self.customers.get(customer)
        if row is not None and (profile := self.undumped.pop(customer, None)) is not None:
            row.profile = profile.model_dump_json()
        return row

    def _set_unsubscribed(self, customer: str, at: datetime | None) -> None:
        row = self.customers.get(customer)
        if row is None:
            row = self.customers[customer] = CustomerRow(customer, None, -1, None, None, None)
            self.dirty_profiles.add(customer)
        row.unsubscribed_at = at
        if customer in self.stored_customers:
            self.unsubscribed[customer] = at

    def _apply_contact(self, customer: str, change: ProfileChanged, update: ContactChange) -> None:
        if update.kind == "unsubscribed":
            row = self.customers.get(customer)
            if row is None or row.unsubscribed_at is None:
                self._set_unsubscribed(customer, update.at)
        elif update.kind in ("hard_bounce", "complaint"):
            # The address the message went to, else the customer's address now.
            row = self.customers.get(customer)
            address = (update.email_id and self.recipients.get(update.email_id)) or (row.email if row else None)
            if address:
                self._suppress(address, update.kind, update.source, update.at)
            else:
                log.warning("suppression_without_address", reason=update.kind, source=update.source)
        else:
            self._set_consent(customer, update)

    def _suppress(self, address: str, reason: str, source: str, at: datetime) -> None:
        digest = address_digest(address)
        row = self.suppressions.get(digest)
        fresh = SuppressionRow(digest, reason, source[:200], at)
        if row is None:
            self.suppressions[digest] = self.suppressed_new[digest] = fresh
        elif row.lifted_at is not None and _aware(row.lifted_at) <= at:
            self.suppressions[digest] = fresh
            if digest in self.suppressed_new:
                self.suppressed_new[digest] = fresh
            else:
                self.suppressed_renewed[digest] = fresh

    def _set_consent(self, customer: str, update: ContactChange) -> None:
        consents = self.consents.setdefault(customer, {})
        key = (update.channel, update.purpose)
        row = consents.get(key)
        if row is None or _aware(row.updated_at) <= update.at:
            row = ConsentRow(customer, update.channel, update.purpose, update.granted, update.source, update.at)
            consents[key] = self.consents_changed[(customer, *key)] = row
        if update.granted and update.channel == "email" and update.purpose == MARKETING:
            stored = self.customers.get(customer)
            if stored is not None and stored.unsubscribed_at is not None and _aware(stored.unsubscribed_at) < update.at:
                self._set_unsubscribed(customer, None)  # opting in again undoes an earlier unsubscribe

    def _segments_of(self, customer: str) -> frozenset[str]:
        return frozenset(self.segments.get(customer, ()))

    def _consent_of(self, customer: str) -> dict[str, bool]:
        return {channel: c.granted for (channel, purpose), c in self.consents.get(customer, {}).items()
                if purpose == MARKETING}  # fmt: skip

    # --- loyalty ---------------------------------------------------------------------------

    def _add_points(self, customer: str, points: int, reason: str, dedup_key: str) -> int | None:
        balance = self.balances.get(customer, 0)
        if points < 0:
            points = max(points, -balance)
        if dedup_key in self.ledger_keys:
            return None
        self.ledger_keys.add(dedup_key)
        self.balances[customer] = balance + points
        self.writes.ledger.append(LedgerEntry(str(uuid.uuid4()), customer, points, reason, None, dedup_key, self.now))
        return points

    # --- actions ----------------------------------------------------------------------------

    def _last_acted(self, rule_id: str, customer: str) -> datetime | None:
        times = [_aware(a.created_at) for a in self.open.get(customer, ())
                 if a.rule_id == rule_id and a.status not in NOT_ACTED]  # fmt: skip
        if (settled := self.last_acted.get((rule_id, customer))) is not None:
            times.append(_aware(settled))
        return max(times) if times else None

    def _plan(self, firings: list[Firing], facts: Facts) -> None:
        for firing in firings:
            last = self._last_acted(firing.rule.id, firing.customer_id)
            result = plan(firing, facts, self.now, last, self.secret)
            if result.skipped is not None:
                kind = result.skip_reason or result.skipped.partition(":")[0]
                self.outcome.skipped[kind] = self.outcome.skipped.get(kind, 0) + 1
                self.writes.skips.append(
                    Skip(firing.rule.id, firing.customer_id, kind, result.skipped, firing.cause, self.now)
                )
                continue
            added = self._add_actions(result.actions)
            self.outcome.planned += added
            self.writes.planned_by_trigger[firing.rule.trigger.kind] += added

    def _add_actions(self, planned: list[PlannedAction]) -> int:
        added = 0
        for p in planned:
            self.writes.attempted_keys.add(p.dedup_key)
            if p.dedup_key in self.taken_keys:
                continue
            self.taken_keys.add(p.dedup_key)
            row = OpenAction(str(uuid.uuid4()), p.dedup_key, p.rule_id, p.customer_id, p.cause, p.status,
                             orjson.dumps(p.payload, default=str).decode(), self.now)  # fmt: skip
            self.open.setdefault(p.customer_id, []).append(row)
            self.new_actions[row.id] = (p, row)
            added += 1
        return added

    def _cancel_waiting(self, customer: str, matches: Callable[[list[EventMatch], str], str | None]) -> int:
        """Cancel the customer's waiting actions for which ``matches(cancel_on, cause)`` gives a reason."""
        cancelled = 0
        for row in self.open.get(customer, ()):
            if row.status != "waiting":
                continue
            cancel_on = self._cancel_on(row)
            if cancel_on and (reason := matches(cancel_on, row.cause)):
                row.status = "cancelled"
                self._closed(row, reason, release_lease=False)
                cancelled += 1
        return cancelled

    def _cancel_on(self, row: OpenAction) -> list[EventMatch]:
        if (found := self.cancel_on.get(row.id)) is None:
            cancel_on = orjson.loads(row.payload).get("cancel_on") or []
            found = self.cancel_on[row.id] = [EventMatch.model_validate(m) for m in cancel_on]
        return found

    def _cancel_open(self, customer: str, reason: str) -> int:
        """Cancel every action of the customer not carried out yet (:func:`.actions.close_action`, in storage)."""
        cancelled = 0
        for row in self.open.get(customer, ()):
            if row.status not in OPEN:
                continue
            row.status = "cancelled"
            if releases_once(row.payload, "cancelled", reason):
                self.taken_keys.discard(row.dedup_key)
                row.dedup_key = released_key(row.dedup_key, row.id)
            self._closed(row, reason[:300], release_lease=True)
            cancelled += 1
        return cancelled

    def _closed(self, row: OpenAction, reason: str, *, release_lease: bool) -> None:
        self.closed[row.id] = ClosedAction(row.id, row.status, reason, self.now, row.dedup_key, release_lease)

    # --- the outcome ------------------------------------------------------------------------

    def finish(self) -> Writes:
        writes = self.writes
        writes.profiles = [kept for c in sorted(self.dirty_profiles) if (kept := self._profile_of(c)) is not None]
        writes.unsubscribed = sorted(self.unsubscribed.items())
        writes.consents = list(self.consents_changed.values())
        writes.segments_left = sorted(self.left)
        writes.segments_entered = list(self.entered.values())
        writes.suppressions_new = list(self.suppressed_new.values())
        writes.suppressions_renewed = list(self.suppressed_renewed.values())
        for planned, row in self.new_actions.values():
            closed = self.closed.get(row.id)
            made = replace(new_action(planned, self.now, row.payload), id=row.id, status=row.status)
            writes.actions.append(replace(made, reason=closed.reason, done_at=closed.done_at) if closed else made)
        writes.closed = [c for c in self.closed.values() if c.id not in self.new_actions]
        return writes


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def run(
    session: Session,
    changes: Sequence[Change],
    rules: list[RuleSpec],
    program: LoyaltyProgram,
    now: datetime,
    secret: str,
) -> Intake:
    """Read, plan (again, when planned actions exist already), write: one batch in ``session``."""
    index = RuleIndex.of(rules)
    prepared = [prepare(change, index, program) for change in changes]
    snapshot = read(session, prepared)
    while True:
        batch = Batch(snapshot, rules, program, now, secret)
        for p in prepared:
            batch.apply(p)
        writes = batch.finish()
        unknown = writes.attempted_keys - snapshot.existing_action_keys
        found = actions.existing_keys(session, unknown) if unknown else set()
        if not found:
            break
        snapshot.existing_action_keys |= found  # a redelivery: plan again knowing them
    write(session, writes)
    outcome = batch.outcome
    for kind, count in outcome.skipped.items():
        metrics.DECISIONS.labels("skipped", kind).inc(count)
    for kind, count in writes.planned_by_trigger.items():
        metrics.DECISIONS.labels("planned", kind).inc(count)
    return outcome


class IntakeStep:
    """The intake's entry points; each runs in the caller's session (its transaction)."""

    def __init__(self, store: Store, reward_secret: str) -> None:
        self.store, self.secret = store, reward_secret

    def take(
        self,
        session: Session,
        changes: Sequence[Change],
        rules: list[RuleSpec],
        program: LoyaltyProgram,
        now: datetime,
        outcome: Intake | None = None,
    ) -> Intake:
        """A batch of changes, in order (the consumer puts a batch's profile changes first)."""
        result = run(session, changes, rules, program, now, self.secret)
        if outcome is not None:
            _add(outcome, result)
        return result

    def profile_change(
        self,
        session: Session,
        change: ProfileChanged,
        rules: list[RuleSpec],
        program: LoyaltyProgram,
        now: datetime,
        outcome: Intake,
    ) -> None:
        """One profile change: a batch of one."""
        self.take(session, [change], rules, program, now, outcome)

    def segment_change(
        self,
        session: Session,
        change: SegmentMembershipChanged,
        rules: list[RuleSpec],
        program: LoyaltyProgram,
        now: datetime,
        outcome: Intake,
    ) -> None:
        """One segment change: a batch of one."""
        self.take(session, [change], rules, program, now, outcome)

    def plan_firings(
        self, session: Session, firings: list[Firing], facts: Facts, now: datetime, outcome: Intake
    ) -> None:
        """Firings found elsewhere (schedules, a tier a rule's points crossed), on given facts."""
        self.take(session, [GivenFirings(firings, facts)], [], LoyaltyProgram(), now, outcome)


def _add(total: Intake, part: Intake) -> None:
    total.planned += part.planned
    total.cancelled += part.cancelled
    total.points += part.points
    for kind, count in part.skipped.items():
        total.skipped[kind] = total.skipped.get(kind, 0) + count
