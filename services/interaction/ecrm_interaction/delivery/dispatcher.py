"""The dispatcher: the loop that carries out due actions.

Every ``INTERACTION_DISPATCH_INTERVAL_S`` (:meth:`Dispatcher.tick`), and step 1 alone as soon
as the consumer of the same process planned actions (:meth:`Dispatcher.wake`: an email does not
wait for the next tick):

1. claim a batch of due actions (pending, waits that ran out, deferred messages whose quiet
   hours ended; one statement) and hand each to the executor of its kind
   (:mod:`ecrm_interaction.delivery.actions`): customers in parallel, one customer's actions
   in order; what the actions read alike (profiles, rules, templates, contacts, recent
   messages, balances: :class:`~ecrm_interaction.delivery.actions.base.BatchReads`) is read
   once for the batch. A delivery that fails (SMTP or webhook down) is retried with exponential backoff
   for ``INTERACTION_RETRY_FOR_S`` before it counts as failed; the batch's outcomes are
   stored together (one statement per kind of outcome);
2. fire the scheduled rules whose cron slot came (:mod:`ecrm_interaction.delivery.schedules`);
3. escalate unresolved cases past their SLA (:mod:`ecrm_interaction.delivery.escalations`);
   send the report subscriptions' due issues (:mod:`ecrm_interaction.delivery.report_mail`, with ClickHouse);
4. publish what was decided and the outbox's events (:mod:`ecrm_interaction.delivery.outbox_relay`).

Messages render the customer's profile as it is when they go out, never older than the change
that fired the rule (see :func:`current_profile`).

An email counts as sent once the SMTP server accepted it, and is stored as sent with its
batch. If the process dies in between, the lease runs out and it is sent again with the same
Message-ID: at most one batch (``INTERACTION_SEND_CONCURRENCY`` actions) can reach a
customer twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from ecrm_interaction import metrics
from ecrm_interaction.consumer.intake import IntakeStep
from ecrm_interaction.delivery.actions import GiveUp, Job, Outcome, Retry, Wiring, build_executors
from ecrm_interaction.delivery.actions.base import BatchReads, Recommender
from ecrm_interaction.delivery.escalations import Escalations
from ecrm_interaction.delivery.outbox_relay import OutboxRelay
from ecrm_interaction.delivery.report_mail import ReportMail
from ecrm_interaction.delivery.schedules import Schedules
from ecrm_interaction.delivery.smtp_sender import Mailer, SmtpTarget
from ecrm_interaction.engine.planning import RULE_DELETED, RULE_DISABLED, released_key, releases_once
from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_rows
from ecrm_interaction.storage import contacts as contact_rows
from ecrm_interaction.storage import loyalty, outbox
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.actions import Finished, Rescheduled
from ecrm_interaction.storage.models import Action
from ecrm_interaction.storage.store import Store, aware
from ecrm_schemas.actions import OPEN, ActionKind, ActionStatus
from ecrm_schemas.kafka_producer import ReliableProducer

if TYPE_CHECKING:
    from ecrm_interaction.api.services.warehouse import Warehouse

log = structlog.get_logger()
LIBRARY = "ecrm-interaction"
"""How the service names itself in its events' ``context.library``."""
PROFILE_CATCH_UP = timedelta(seconds=60)
"""How long an action waits for the profile change that caused it, at most."""
PROFILE_RECHECK = timedelta(seconds=0.5)


def backoff_s(attempts: int) -> float:
    """Seconds before the next attempt: 2, 4, 8 … up to an hour."""
    return float(min(3600, 2**attempts))


def current_profile(
    action: Action, payload: dict[str, Any], stored: dict[str, Any], now: datetime
) -> dict[str, Any] | None:
    """The profile an action acts with: the newest known, the stored one or the one it was
    planned with. A segment change can arrive before the profile change that caused it
    (two topics): until the stored profile is as new as the one the change was evaluated on
    (``profile_version``), the action waits (None), at most :data:`PROFILE_CATCH_UP`."""
    planned = payload.get("profile") or {}
    wanted = max(planned.get("version", -1), (payload.get("trigger") or {}).get("profile_version") or -1)
    newest = max((planned, stored), key=lambda p: p.get("version", -1))
    if newest.get("version", -1) >= wanted:
        return newest
    if now - (aware(action.created_at) or now) < PROFILE_CATCH_UP:
        return None
    log.warning("profile_not_caught_up", action=action.id, version=newest.get("version", -1), wanted=wanted)
    return newest


class Batch:
    """The outcomes of one claimed batch, stored together by :meth:`Dispatcher.tick`."""

    def __init__(self, retry_for: timedelta) -> None:
        self.retry_for = retry_for
        self.finished: list[Finished] = []
        self.rescheduled: list[Rescheduled] = []
        self.by_customer: dict[str, list[tuple[Action, Outcome]]] = {}

    def finish(self, action: Action, outcome: Outcome, now: datetime) -> None:
        if outcome.status == ActionStatus.DEFERRED:
            assert outcome.until is not None
            self.reschedule(action, ActionStatus.DEFERRED, outcome.until, action.attempts, outcome.reason)
            metrics.DECISIONS.labels(ActionStatus.DEFERRED.value, outcome.reason).inc()
        else:
            dedup_key = action.dedup_key
            if releases_once(action.payload, outcome.status, outcome.reason):
                dedup_key = released_key(action.dedup_key, action.id)
            self.finished.append(
                Finished(
                    action.id, outcome.status, outcome.reason[:300], now, action.attempts + 1, dedup_key,
                    recipient=outcome.recipient, subject=outcome.subject,
                )
            )  # fmt: skip
            metrics.DECISIONS.labels(outcome.status.value, outcome.reason.split(":")[0][:60]).inc()
        self.by_customer.setdefault(action.customer_id, []).append((action, outcome))

    def retry_later(self, action: Action, error: str, now: datetime) -> None:
        attempts = action.attempts + 1
        if now - (aware(action.created_at) or now) > self.retry_for:
            reason = f"gave up after {attempts} attempts: {error}"[:300]
            self.finish(action, Outcome(ActionStatus.FAILED, reason), now)
            return
        due = now + timedelta(seconds=backoff_s(attempts))
        self.reschedule(action, ActionStatus.PENDING, due, attempts, action.reason, error[:300])
        metrics.DECISIONS.labels("retrying", action.kind).inc()
        log.warning("action_retrying", action=action.id, kind=action.kind, attempts=attempts, error=error[:200])

    def reschedule(
        self,
        action: Action,
        status: ActionStatus,
        due: datetime,
        attempts: int,
        reason: str | None,
        last_error: str | None = None,
    ) -> None:
        error = last_error if last_error is not None else action.last_error
        self.rescheduled.append(Rescheduled(action.id, status, due, attempts, reason, error))

    def earlier(self, customer_id: str) -> tuple[tuple[Action, Outcome], ...]:
        return tuple(self.by_customer.get(customer_id, ()))


class Dispatcher:
    """The dispatch loop, and the delivery room wired together: the executors, the relay,
    the schedules and the escalations, each given what it needs."""

    def __init__(
        self,
        settings: InteractionSettings,
        store: Store,
        producer: ReliableProducer | None,
        recommender: Recommender | None = None,
        warehouse: Warehouse | None = None,
    ) -> None:
        """``warehouse``: ClickHouse, for the report subscriptions (none are sent without)."""
        self.settings, self.store, self.producer = settings, store, producer
        mailer = Mailer(SmtpTarget.from_url(settings.smtp_url), settings.smtp_timeout_s, settings.email_from)
        intake = IntakeStep(store, settings.tracking_secret.get_secret_value())
        self.executors = build_executors(Wiring(settings, store, mailer, intake, recommender))
        self.relay = OutboxRelay(store, producer)
        self.schedules = Schedules(store, intake)
        self.escalations = Escalations(store, mailer, self.relay, settings.interaction_escalation_email)
        self.report_mail = (
            None if warehouse is None else ReportMail(store, warehouse, mailer, settings.interaction_public_url)
        )
        # Longer than one attempt can take, so a live dispatcher never loses its claim; a dead
        # one's claims are taken over when it runs out.
        self.window = max((cap.window for cap in settings.policy().caps), default=timedelta(0))
        self.lease = timedelta(seconds=max(settings.smtp_timeout_s, settings.interaction_webhook_timeout_s) * 2 + 10)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        self._woken, self._loop = asyncio.Event(), asyncio.get_running_loop()
        interval = self.settings.interaction_dispatch_interval_s
        next_tick = 0.0
        while not stopping.is_set():
            try:
                if self._loop.time() >= next_tick:
                    next_tick = self._loop.time() + interval
                    await self.tick(datetime.now(UTC))
                else:  # woken: the actions just planned
                    await self.dispatch(datetime.now(UTC))
            except Exception as exc:  # a database or broker hiccup: the next tick tries again
                log.error("dispatch_failed", error=str(exc))
            stopped, woken = asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(self._woken.wait())
            try:
                await asyncio.wait({stopped, woken}, timeout=max(0.0, next_tick - self._loop.time()),
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            finally:
                stopped.cancel()
                woken.cancel()
            self._woken.clear()

    def wake(self) -> None:
        """Actions were planned (from any thread): claim them now rather than at the next tick."""
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the service is stopping
                loop.call_soon_threadsafe(woken.set)

    async def tick(self, now: datetime) -> None:
        await self.dispatch(now)
        await self.schedules.fire(now)
        await self.escalations.escalate(now)
        if self.report_mail is not None:
            await self.report_mail.send_due(now)
        await asyncio.to_thread(self.relay.publish)
        sizes = await asyncio.to_thread(self._queue_sizes)
        for status in OPEN:
            metrics.QUEUE.labels(status.value).set(sizes.get(status, 0))

    async def dispatch(self, now: datetime) -> None:
        """Claim one batch of due actions, carry them out, store their outcomes."""
        claimed, profiles, states, reads = await asyncio.to_thread(self._claim, now)
        batch = Batch(self.settings.retry_for)
        by_customer: dict[str, list[Action]] = {}
        for action in claimed:
            if action.rule_id is not None and not states.get(action.rule_id, False):
                # switched off after it was planned (a batch being planned while the rule was disabled)
                reason = RULE_DISABLED if action.rule_id in states else RULE_DELETED
                batch.finish(action, Outcome(ActionStatus.CANCELLED, reason), now)
            else:
                by_customer.setdefault(action.customer_id, []).append(action)
        # Customers in parallel (SMTP round trips overlap); one customer's actions in order, so
        # frequency caps count the message sent just before.
        await asyncio.gather(
            *(self._execute_in_order(actions, profiles, reads, batch, now) for actions in by_customer.values())
        )
        if batch.finished or batch.rescheduled:
            await asyncio.to_thread(self._store_outcomes, batch)

    def _claim(self, now: datetime) -> tuple[list[Action], dict[str, dict[str, Any]], dict[str, bool], BatchReads]:
        """The claimed batch, its customers' stored profiles, every rule's state and what its
        actions read alike (a fixed number of queries whatever the batch's size)."""
        with self.store.sessions.begin() as session:
            claimed = action_rows.claim_due(session, now, self.settings.interaction_send_concurrency, self.lease)
        if not claimed:
            return [], {}, {}, BatchReads({}, {}, LoyaltyProgram())
        rules, templates = self.store.read(rule_store.enabled_rules)
        mail = {a.customer_id: a for a in claimed if a.kind == ActionKind.EMAIL}
        cooldown = max((r.cooldown for r in rules if r.cooldown is not None), default=timedelta(0))
        since = now - max(self.window, cooldown)
        with self.store.sessions() as session:
            profiles = outbox.stored_profiles(session, [a.customer_id for a in claimed])
            planned = {c: (orjson.loads(a.payload).get("profile") or {}).get("email") for c, a in mail.items()}
            reads = BatchReads(
                {rule.id: rule for rule in rules},
                templates,
                self.store.read(rule_store.loyalty_program),
                contacts=contact_rows.contacts(session, planned) if mail else {},
                messages=contact_rows.recent_messages(session, mail, since) if mail else {},
                since=since,
                balances=loyalty.balances(session, mail) if mail else {},
            )
        return claimed, profiles, self.store.read(rule_store.rule_states), reads

    def _queue_sizes(self) -> dict[ActionStatus, int]:
        with self.store.sessions() as session:
            return action_rows.queue_sizes(session)

    def _store_outcomes(self, batch: Batch) -> None:
        with self.store.sessions.begin() as session:
            action_rows.finish(session, batch.finished, batch.rescheduled)

    async def _execute_in_order(
        self, actions: list[Action], profiles: dict[str, dict[str, Any]], reads: BatchReads, batch: Batch, now: datetime
    ) -> None:
        for action in actions:
            await self.execute(action, profiles.get(action.customer_id) or {}, reads, batch, now)

    async def execute(
        self, action: Action, stored: dict[str, Any], reads: BatchReads, batch: Batch, now: datetime
    ) -> None:
        """Carry out one claimed action with its executor; its outcome joins ``batch``."""
        payload = orjson.loads(action.payload)
        profile = current_profile(action, payload, stored, now)
        if profile is None:
            batch.reschedule(action, ActionStatus(action.status), now + PROFILE_RECHECK, action.attempts, action.reason)
            return
        payload["profile"] = profile
        try:
            executor = self.executors.get(ActionKind(action.kind))
            if executor is None:
                raise ValueError
        except ValueError:
            batch.finish(action, Outcome(ActionStatus.FAILED, f"unknown action kind {action.kind!r}"), now)
            return
        try:
            spec = executor.spec.model_validate(payload.get("action") or {})
            job = Job(action, payload, spec, reads, now, batch.earlier(action.customer_id))
            outcome = await executor.execute(job)
        except Retry as exc:
            batch.retry_later(action, str(exc), now)
        except GiveUp as exc:
            batch.finish(action, Outcome(ActionStatus.FAILED, str(exc)), now)
        except Exception as exc:  # e.g. the database: it stays claimed, and is tried again when the lease ends
            log.error("action_failed", action=action.id, kind=action.kind, error=type(exc).__name__)
        else:
            batch.finish(action, outcome, now)

    # --- the relay's, for the callers that know the dispatcher ---------------------------

    def publish(self) -> None:
        """:meth:`OutboxRelay.publish`."""
        self.relay.publish()

    def outbox_events(self, now: datetime) -> list[dict[str, Any]]:
        """:meth:`OutboxRelay.outbox_events`."""
        return self.relay.outbox_events(now)

    def report(self, name: str, customer_id: str, message_id: str, properties: dict[str, Any]) -> None:
        """:meth:`OutboxRelay.report`."""
        self.relay.report(name, customer_id, message_id, properties)
