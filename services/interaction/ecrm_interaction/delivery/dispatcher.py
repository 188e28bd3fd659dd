"""The dispatcher: carries out due actions, fires schedules, escalates cases, reports decisions.

Every ``INTERACTION_DISPATCH_INTERVAL_S``:

1. lease the due actions (pending, waits that ran out, deferred messages whose quiet hours
   ended) and carry each out: a message first passes the contact policy (suppressed,
   deferred, or sent); a delivery that fails (SMTP or webhook down) is retried with
   exponential backoff for ``INTERACTION_RETRY_FOR_S`` before it counts as failed;
2. fire the scheduled rules whose cron slot came, for their segment's members;
3. escalate unresolved cases past their SLA (a notification, a ``Case Escalated`` event);
4. publish what was decided (``Email Sent``, ``Message Suppressed``, …) on the events topic,
   so the aggregator stores it with the customer's other events.

Messages render the customer's profile as it is when they go out, never older than the change
that fired the rule (see :meth:`Dispatcher._current_profile`).

An email is marked sent right after the SMTP server accepted it. If the process dies in
between, the lease runs out and it is sent again with the same Message-ID: that window
(one SMTP round trip) is the only way a customer can get a message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog

import ecrm_schemas.email_tags as email_tags
from ecrm_interaction import metrics
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.delivery.smtp_sender import SmtpTarget, compose, deliver
from ecrm_interaction.delivery.webhooks import UnsafeWebhookTarget, post, signed_headers
from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.contact_policy import Contact, History
from ecrm_interaction.engine.contact_policy import decide as policy_decision
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.planning import RULE_DELETED, RULE_DISABLED, released_key, releases_once
from ecrm_interaction.engine.rendering import (
    RenderedEmail,
    RenderError,
    add_tracking,
    message_context,
    render_email,
    render_text,
)
from ecrm_interaction.engine.rules import (
    CaseAction,
    EmailAction,
    NotifyAction,
    PointsAction,
    RewardAction,
    ScheduleTrigger,
    WebhookAction,
)
from ecrm_interaction.engine.triggers import OWN_EVENTS, loyalty_firings, schedule_firings
from ecrm_interaction.engine.unsubscribe import UnsubscribeToken, sign_unsubscribe
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage import suppressions as suppression_store
from ecrm_interaction.storage.models import Action
from ecrm_interaction.storage.store import LOYALTY_EVENT, Store, aware
from ecrm_schemas.builders import build_alias, build_track
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.events import Event, TrackEvent, encode_event
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.own_events import own_event_headers
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.tracking import TrackingToken, sign, tracking_url

log = structlog.get_logger()
LIBRARY = "ecrm-interaction"
"""How the service names itself in its events' ``context.library``."""
PROFILE_CATCH_UP = timedelta(seconds=60)
"""How long an action waits for the profile change that caused it, at most."""
PROFILE_RECHECK = timedelta(seconds=0.5)
Recommender = Callable[[str, int], list[dict[str, Any]]]


class Retry(Exception):
    """A delivery failed in a way that may pass (the server is down): try again later."""


class GiveUp(Exception):
    """A delivery can never succeed (no template, an unsafe webhook target)."""


def backoff_s(attempts: int) -> float:
    """Seconds before the next attempt: 2, 4, 8 … up to an hour."""
    return float(min(3600, 2**attempts))


class Dispatcher:
    def __init__(
        self,
        settings: InteractionSettings,
        store: Store,
        producer: ReliableProducer | None,
        recommender: Recommender | None = None,
    ) -> None:
        self.settings, self.store, self.producer, self.recommender = settings, store, producer, recommender
        self.smtp = SmtpTarget.from_url(settings.smtp_url)
        self.policy = settings.policy()
        self.secret = settings.tracking_secret.get_secret_value()
        self.intake = IntakeStep(store, self.secret)
        # Longer than one attempt can take, so a live dispatcher never loses its claim; a dead
        # one's claims are taken over when it runs out.
        self.lease = timedelta(seconds=max(settings.smtp_timeout_s, settings.interaction_webhook_timeout_s) * 2 + 10)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.tick(datetime.now(UTC))
            except Exception as exc:  # a database or broker hiccup: the next tick tries again
                log.error("dispatch_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.interaction_dispatch_interval_s)

    async def tick(self, now: datetime) -> None:
        concurrency = self.settings.interaction_send_concurrency
        claimed = await asyncio.to_thread(self.store.claim_due, now, concurrency, self.lease)
        if claimed:
            claimed = await asyncio.to_thread(self._drop_switched_off, claimed, now)
        by_customer: dict[str, list[Action]] = {}
        for action in claimed:
            by_customer.setdefault(action.customer_id, []).append(action)
        # Customers in parallel (SMTP round trips overlap); one customer's actions in order, so
        # frequency caps count the message sent just before.
        await asyncio.gather(*(self._execute_in_order(actions, now) for actions in by_customer.values()))
        await self.fire_schedules(now)
        await self.escalate(now)
        await asyncio.to_thread(self.publish)
        sizes = await asyncio.to_thread(self.store.queue_sizes)
        for status in ("pending", "waiting", "deferred"):
            metrics.QUEUE.labels(status).set(sizes.get(status, 0))

    # --- carrying actions out -------------------------------------------------------------

    async def _execute_in_order(self, actions: list[Action], now: datetime) -> None:
        for action in actions:
            await self.execute(action, now)

    async def execute(self, action: Action, now: datetime) -> None:
        payload = orjson.loads(action.payload)
        spec = payload.get("action") or {}
        profile = await asyncio.to_thread(self._current_profile, action, payload, now)
        if profile is None:
            await asyncio.to_thread(self.store.finish, action.id, due_at=now + PROFILE_RECHECK)
            return
        payload["profile"] = profile
        try:
            if action.kind == "email":
                await self._email(action, payload, EmailAction.model_validate(spec), now)
            elif action.kind == "webhook":
                await self._webhook(action, payload, WebhookAction.model_validate(spec), now)
            elif action.kind == "notify":
                await self._notify(action, payload, NotifyAction.model_validate(spec), now)
            elif action.kind == "case":
                await asyncio.to_thread(self._case, action, payload, CaseAction.model_validate(spec), now)
            elif action.kind == "points":
                await asyncio.to_thread(self._points, action, PointsAction.model_validate(spec), now)
            elif action.kind == "reward":
                await asyncio.to_thread(self._reward, action, payload, RewardAction.model_validate(spec), now)
            else:
                raise GiveUp(f"unknown action kind {action.kind!r}")
        except Retry as exc:
            await asyncio.to_thread(self._retry_later, action, str(exc), now)
        except GiveUp as exc:
            await asyncio.to_thread(self._finish, action, "failed", str(exc), now)

    def _current_profile(self, action: Action, payload: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        """The profile an action acts with: the newest known, the stored one or the one it was
        planned with. A segment change can arrive before the profile change that caused it
        (two topics): until the stored profile is as new as the one the change was evaluated on
        (``profile_version``), the action waits (None), at most :data:`PROFILE_CATCH_UP`."""
        planned = payload.get("profile") or {}
        wanted = max(planned.get("version", -1), (payload.get("trigger") or {}).get("profile_version") or -1)
        customer = self.store.read(customer_store.customer, action.customer_id)
        stored = orjson.loads(customer.profile) if customer is not None and customer.profile else {}
        newest = max((planned, stored), key=lambda p: p.get("version", -1))
        if newest.get("version", -1) >= wanted:
            return newest
        if now - (aware(action.created_at) or now) < PROFILE_CATCH_UP:
            return None
        log.warning("profile_not_caught_up", action=action.id, version=newest.get("version", -1), wanted=wanted)
        return newest

    def _drop_switched_off(self, claimed: list[Action], now: datetime) -> list[Action]:
        """Cancel the claimed actions whose rule was disabled or deleted after they were planned
        (a batch that was being planned while the rule was switched off); the rest go ahead."""
        states = self.store.read(rule_store.rule_states)
        kept = []
        for action in claimed:
            if action.rule_id is None or states.get(action.rule_id, False):
                kept.append(action)
            else:
                reason = RULE_DISABLED if action.rule_id in states else RULE_DELETED
                self._finish(action, "cancelled", reason, now)
        return kept

    def _retry_later(self, action: Action, error: str, now: datetime) -> None:
        attempts = action.attempts + 1
        if now - aware(action.created_at) > self.settings.retry_for:  # type: ignore[operator]
            self._finish(action, "failed", f"gave up after {attempts} attempts: {error}"[:300], now)
            return
        due = now + timedelta(seconds=backoff_s(attempts))
        self.store.finish(action.id, status="pending", attempts=attempts, last_error=error[:300], due_at=due)
        metrics.DECISIONS.labels("retrying", action.kind).inc()
        log.warning("action_retrying", action=action.id, kind=action.kind, attempts=attempts, error=error[:200])

    def _finish(self, action: Action, status: str, reason: str, now: datetime, **values: Any) -> None:
        if releases_once(action.payload, status, reason):
            values["dedup_key"] = released_key(action.dedup_key, action.id)
        self.store.finish(
            action.id, status=status, reason=reason[:300], done_at=now, attempts=action.attempts + 1, **values
        )
        metrics.DECISIONS.labels(status, reason.split(":")[0][:60]).inc()

    async def _email(self, action: Action, payload: dict[str, Any], spec: EmailAction, now: datetime) -> None:
        contact_row = await asyncio.to_thread(self.store.contact, action.customer_id)
        profile = payload.get("profile") or {}
        address = contact_row.email or profile.get("email")
        suppressed = contact_row.suppressed
        if address and not contact_row.email:
            suppression = await asyncio.to_thread(self.store.read, suppression_store.of_address, address)
            suppressed = suppression.reason if suppression is not None else None
        contact = Contact(
            address,
            contact_row.timezone,
            contact_row.consent.get("email"),
            contact_row.unsubscribed,
            suppressed,
        )
        window = max((cap.window for cap in self.policy.caps), default=timedelta(0))
        cooldown = await asyncio.to_thread(self._rule_cooldown, action.rule_id)
        since = now - max(window, cooldown or timedelta(0))
        sent, rule_last = await asyncio.to_thread(self.store.message_history, action.customer_id, action.rule_id, since)
        verdict = policy_decision(
            contact,
            History(sent, rule_last),
            action.category,  # type: ignore[arg-type]
            cooldown,
            now,
            self.policy,
        )
        if verdict.outcome == "suppress":
            await asyncio.to_thread(self._finish, action, "suppressed", verdict.reason, now)
            return
        if verdict.outcome == "defer":
            assert verdict.until is not None
            await asyncio.to_thread(
                self.store.finish, action.id, status="deferred", reason=verdict.reason, due_at=verdict.until
            )
            metrics.DECISIONS.labels("deferred", verdict.reason).inc()
            return
        assert address is not None
        templates = await asyncio.to_thread(self.store.read, rule_store.templates)
        template = templates.get(spec.template)
        if template is None:
            raise GiveUp(f"template {spec.template!r} does not exist")
        recommendations = []
        if spec.recommendations and self.recommender is not None:
            recommendations = await asyncio.to_thread(self.recommender, action.customer_id, spec.recommendations)
        unsubscribe_token = self.unsubscribe_token(action.customer_id, action.id)
        unsubscribe = f"{self.unsubscribe_pages}{unsubscribe_token}"
        context = message_context(
            payload,
            rule_id=action.rule_id or "",
            recommendations=recommendations,
            loyalty=await asyncio.to_thread(self._loyalty, action.customer_id),
            unsubscribe_url=unsubscribe,
        )
        try:
            rendered = render_email(template, context)
        except RenderError as exc:
            raise _render_failed(action, exc, template.id) from exc
        rendered = add_tracking(
            rendered,
            lambda url: self._tracking_url(action, profile, url),
            self._tracking_url(action, profile, None),
            untracked=(self.unsubscribe_pages,),
        )
        listed = action.category != "transactional"  # marketing and onboarding mail can be left
        message = compose(
            rendered,
            sender=self.settings.email_from,
            recipient=address,
            send_id=action.id,
            rule_id=action.rule_id or "",
            unsubscribe_url=unsubscribe if listed else None,
            unsubscribe_mailto=self.unsubscribe_mailto(unsubscribe_token) if listed else None,
            headers=self.provider_headers(action, profile),
        )
        started = time.perf_counter()

        async def record_sent() -> None:
            metrics.SEND_SECONDS.observe(time.perf_counter() - started)
            await asyncio.to_thread(
                self._finish, action, "sent", verdict.reason, now, recipient=address, subject=rendered.subject
            )

        try:
            await deliver(message, self.smtp, self.settings.smtp_timeout_s, accepted=record_sent)
        except Exception as exc:
            if await asyncio.to_thread(self._is_sent, action.id):
                return  # accepted and recorded; only closing the session failed
            raise Retry(f"smtp: {type(exc).__name__}") from exc
        log.info("email_sent", action=action.id, rule=action.rule_id)

    def _is_sent(self, action_id: str) -> bool:
        return any(a.status == "sent" for a in self.store.actions_by_id([action_id]))

    def _rule_cooldown(self, rule_id: str | None) -> timedelta | None:
        rule = self.store.read(rule_store.rule, rule_id) if rule_id else None
        return rule.cooldown if rule is not None else None

    def _loyalty(self, customer_id: str) -> dict[str, Any]:
        program = self.store.read(rule_store.loyalty_program)
        with self.store.session() as session:
            points = self.store.balance(session, customer_id)
        return {"points": points, "tier": tier_of(points, program)}

    @property
    def unsubscribe_pages(self) -> str:
        """Where unsubscribe links point (never click-tracked)."""
        return f"{self.settings.interaction_public_url.rstrip('/')}/u/"

    def unsubscribe_token(self, customer_id: str, email_id: str | None) -> str:
        """The signed token of an unsubscribe link (page URL: :attr:`unsubscribe_pages` + token)."""
        return sign_unsubscribe(UnsubscribeToken(customer_id=customer_id, email_id=email_id), self.secret)

    def unsubscribe_mailto(self, token: str) -> str | None:
        """The List-Unsubscribe ``mailto:`` target (without the scheme): the mailbox, the token as subject."""
        mailbox = self.settings.unsubscribe_mailbox
        return f"{mailbox}?subject=unsubscribe%20{token}" if mailbox else None

    def provider_headers(self, action: Action, profile: dict[str, Any]) -> dict[str, str]:
        """Our tags, in the header of every configured ESP (customer mail only: a bounce of a
        team notification must never suppress the customer it was about)."""
        customer = {"user_id" if _customer_kind(action, profile) == "userId" else "anonymous_id": action.customer_id}
        tags = email_tags.message_tags(action.id, rule_id=action.rule_id, **customer)
        return email_tags.provider_headers(
            tags, self.settings.email_providers, ses_configuration_set=self.settings.interaction_ses_configuration_set
        )

    def _tracking_url(self, action: Action, profile: dict[str, Any], url: str | None) -> str:
        kind = _customer_kind(action, profile)
        token = sign(
            TrackingToken(
                email_id=action.id,
                customer=action.customer_id,
                customer_kind=kind,  # type: ignore[arg-type]
                rule_id=action.rule_id,
                url=url,
            ),
            self.secret,
        )
        return tracking_url(self.settings.interaction_tracking_url, token, click=url is not None)

    async def _webhook(self, action: Action, payload: dict[str, Any], spec: WebhookAction, now: datetime) -> None:
        body = orjson.dumps(
            {
                "type": "ecrm.rule.fired",
                "id": action.id,
                "rule": {"id": action.rule_id, "name": payload.get("rule_name")},
                "customer_id": action.customer_id,
                "reason": payload.get("reason"),
                "trigger": payload.get("trigger"),
                "profile": payload.get("profile"),
                "at": now.isoformat(),
            }
        ).decode()
        await self._post(str(spec.url), body, signed_headers(spec.secret, action.id, body))
        await asyncio.to_thread(self._finish, action, "done", "delivered", now, recipient=str(spec.url)[:320])

    async def _post(self, url: str, body: str, headers: dict[str, str]) -> None:
        try:
            await post(
                url,
                body,
                headers,
                timeout_s=self.settings.interaction_webhook_timeout_s,
                allowed=self.settings.webhook_allowed,
            )
        except UnsafeWebhookTarget as exc:
            raise GiveUp(f"unsafe_target: {exc}") from exc
        except Exception as exc:
            raise Retry(f"webhook: {type(exc).__name__}") from exc

    async def _notify(self, action: Action, payload: dict[str, Any], spec: NotifyAction, now: datetime) -> None:
        context = message_context(payload, rule_id=action.rule_id or "")
        try:
            text = render_text(spec.message, context)
        except RenderError as exc:
            raise _render_failed(action, exc, part="message") from exc
        if spec.chat_webhook is not None:
            body = orjson.dumps({"text": text}).decode()
            await self._post(str(spec.chat_webhook), body, signed_headers(self.secret, action.id, body))
        for address in spec.emails:
            subject = f"[eCRM] {context['rule']['name']}: {action.customer_id}"
            message = compose(
                RenderedEmail(subject, text, None),
                sender=self.settings.email_from,
                recipient=address,
                send_id=f"{action.id}-{address}",
                rule_id=action.rule_id or "",
            )
            try:
                await deliver(message, self.smtp, self.settings.smtp_timeout_s)
            except Exception as exc:
                raise Retry(f"smtp: {type(exc).__name__}") from exc
        await asyncio.to_thread(
            self._finish,
            action,
            "done",
            "notified",
            now,
            recipient=", ".join(spec.emails)[:320] or None,
            subject=text[:500],
        )

    def _case(self, action: Action, payload: dict[str, Any], spec: CaseAction, now: datetime) -> None:
        try:
            subject = render_text(spec.subject, message_context(payload, rule_id=action.rule_id or ""))
        except RenderError as exc:
            raise _render_failed(action, exc, part="subject") from exc
        with self.store.sessions.begin() as session:
            opening = case_store.CaseOpening(
                customer_id=action.customer_id,
                subject=subject[:300],
                priority=spec.priority,
                sla=spec.sla,
                assignee=spec.assignee,
                rule_id=action.rule_id,
                dedup_key=action.dedup_key,
                note=customer_comment(payload.get("trigger") or {}),
            )
            case_id = case_store.open_case(session, opening, now)
        self._finish(
            action,
            "done",
            "case opened" if case_id else "case already open",
            now,
            subject=subject[:500],
            recipient=case_id,
        )

    def _points(self, action: Action, spec: PointsAction, now: datetime) -> None:
        self._change_points(action, spec.points, spec.reason, action.dedup_key, now)
        self._finish(action, "done", f"{spec.points:+d} points", now)

    def _reward(self, action: Action, payload: dict[str, Any], spec: RewardAction, now: datetime) -> None:
        code = payload.get("reward_code") or action.id
        with self.store.sessions.begin() as session:
            issued = self.store.issue_reward(
                session, action.customer_id, spec.reward, code, spec.points_cost, action.dedup_key, action.rule_id, now
            )
        if issued and spec.points_cost:
            self._change_points(action, -spec.points_cost, f"reward {spec.reward}", f"{action.dedup_key}:cost", now)
        self._finish(action, "done", f"reward {spec.reward}", now, recipient=code)

    def _change_points(self, action: Action, points: int, reason: str, dedup_key: str, now: datetime) -> None:
        """Points from a rule; a tier crossed on the way fires the rules that watch it."""
        program = self.store.read(rule_store.loyalty_program)
        rules, _ = self.store.read(rule_store.enabled_rules)
        with self.store.sessions.begin() as session:
            before = self.store.balance(session, action.customer_id)
            added = self.store.add_points(session, action.customer_id, points, reason, dedup_key, action.rule_id, now)
            if added is None:
                return
            after = before + added
            previous = {"points": before, "tier": tier_of(before, program)}
            current = {"points": after, "tier": tier_of(after, program)}
            firings = loyalty_firings(rules, action.customer_id, previous, current, action.id)
            if firings:
                profile, segments, consent = self.store.facts_of(session, action.customer_id)
                facts = Facts(profile or {"customer_id": action.customer_id}, segments, consent, current)
                self.intake.plan_firings(session, firings, facts, now, Intake())

    # --- schedules and escalations ------------------------------------------------------------

    async def fire_schedules(self, now: datetime) -> None:
        from ecrm_interaction.engine.schedules import due_slots

        rules, _ = await asyncio.to_thread(self.store.read, rule_store.enabled_rules)
        for rule in rules:
            if not isinstance(rule.trigger, ScheduleTrigger):
                continue
            last = await asyncio.to_thread(self.store.schedule_last, rule.id)
            if last is None:  # a new schedule starts from now: it does not fire for the past
                await asyncio.to_thread(self.store.claim_slot, rule.id, None, now)
                continue
            for slot in due_slots(rule.trigger.cron, rule.trigger.timezone, last, now):
                if await asyncio.to_thread(self.store.claim_slot, rule.id, last, slot):
                    await asyncio.to_thread(self._fire_schedule, rule, slot, now)
                last = slot

    def _fire_schedule(self, rule: Any, slot: datetime, now: datetime) -> None:
        audience = self.store.audience(rule.trigger.segment)
        program = self.store.read(rule_store.loyalty_program)
        outcome = Intake()
        for start in range(0, len(audience), 500):
            with self.store.sessions.begin() as session:
                for customer in audience[start : start + 500]:
                    profile, segments, consent = self.store.facts_of(session, customer)
                    points = self.store.balance(session, customer)
                    facts = Facts(
                        profile or {"customer_id": customer},
                        segments,
                        consent,
                        {"points": points, "tier": tier_of(points, program)},
                    )
                    self.intake.plan_firings(session, schedule_firings(rule, [customer], slot), facts, now, outcome)
        log.info("schedule_fired", rule=rule.id, slot=slot.isoformat(), audience=len(audience), planned=outcome.planned)

    async def escalate(self, now: datetime) -> None:
        cases = await asyncio.to_thread(self.store.claim_escalations, now)
        for case in cases:
            text = (
                f"Case {case.id} ({case.priority}) for customer {case.customer_id} is past its SLA "
                f"({aware(case.sla_due_at):%Y-%m-%d %H:%M} UTC) and still {case.status}: {case.subject}"
            )
            if self.settings.interaction_escalation_email:
                message = compose(
                    RenderedEmail(f"[eCRM] Escalated: {case.subject}"[:200], text, None),
                    sender=self.settings.email_from,
                    recipient=self.settings.interaction_escalation_email,
                    send_id=f"escalation-{case.id}",
                    rule_id=case.rule_id or "",
                )
                try:
                    await deliver(message, self.smtp, self.settings.smtp_timeout_s)
                except Exception as exc:  # the event still says it; operators see the log
                    log.error("escalation_mail_failed", case=case.id, error=type(exc).__name__)
            self._produce_event(
                CatalogEvent.CASE_ESCALATED,
                case.customer_id,
                f"{OWN_EVENTS}case-{case.id}-escalated",
                {
                    "case_id": case.id,
                    "subject": case.subject,
                    "priority": case.priority,
                    "status": case.status,
                    "rule_id": case.rule_id,
                },
                now,
            )
            metrics.ESCALATIONS.inc()
        if cases and self.producer is not None:
            await asyncio.to_thread(self.producer.flush_or_raise, 30)

    # --- reporting -------------------------------------------------------------------------

    def publish(self) -> None:
        """Report final decisions and the outbox's events (cases, loyalty balances) on the events
        topic (once each; retried until acknowledged)."""
        if self.producer is None:
            return
        actions = self.store.unpublished()
        for action in actions:
            self._produce_event(*decision_event(action))
            self._link_address(action)
        outbox = self.store.unpublished_events()
        program = self.store.read(rule_store.loyalty_program) if outbox else None
        for row in outbox:
            self._produce(self._outbox_event(row, program, datetime.now(UTC)))
        if not actions and not outbox:
            return
        self.producer.flush_or_raise(30)
        self.store.mark_published((a.id, a.status) for a in actions)
        self.store.mark_events_published([row.id for row in outbox], datetime.now(UTC))

    def outbox_events(self, now: datetime) -> list[dict[str, Any]]:
        """The outbox's unpublished events as :meth:`publish` sends them (in order), as JSON."""
        outbox = self.store.unpublished_events()
        program = self.store.read(rule_store.loyalty_program)
        return [orjson.loads(encode_event(self._outbox_event(row, program, now))) for row in outbox]

    def _outbox_event(self, row: Any, program: Any, now: datetime) -> TrackEvent:
        if row.name == LOYALTY_EVENT:
            # The balance as of now, stamped now: the latest event the aggregator folds is the ledger's balance.
            return self._event(row.name, row.customer_id, row.message_id, self.store.loyalty_event(row, program), now)
        properties = orjson.loads(row.properties)
        return self._event(row.name, row.customer_id, row.message_id, properties, aware(row.created_at) or now)

    def report(self, name: str, customer_id: str, message_id: str, properties: dict[str, Any]) -> None:
        """Publish one event about a customer now (acknowledged before returning)."""
        if self.producer is None:
            return
        try:
            self._produce_event(name, customer_id, message_id, properties, datetime.now(UTC))
            self.producer.flush_or_raise(10)
        except Exception as exc:  # the database holds the truth; the event is informative
            log.error("report_failed", event=name, error=type(exc).__name__)

    def _identity(self, customer_id: str) -> dict[str, str]:
        """How events name the customer: ``{"userId": …}``, or ``{"anonymousId": …}`` when that is all we know."""
        customer = self.store.read(customer_store.customer, customer_id)
        profile = orjson.loads(customer.profile) if customer is not None and customer.profile else {}
        if profile.get("user_id") or not profile:
            return {"userId": profile.get("user_id") or customer_id}
        return {"anonymousId": customer_id}

    def _link_address(self, action: Action) -> None:
        """After a send to a known user, ``alias`` the address's id (``email:<sha256>``) to them.

        An ESP event without our tags names only the recipient address, and the collector
        gives it that id: the aggregator's identity stitching (merge guard included: an
        address already linked to another user stays theirs) then folds the bounce,
        complaint or open into the user who was sent the message, and the contact policy
        sees it. Anonymous customers are not linked: an alias would make their id look
        like a user id and block their own identify later.
        """
        if self.producer is None or action.kind != "email" or action.status != "sent" or not action.recipient:
            return
        identity = self._identity(action.customer_id)
        if "userId" not in identity:
            return
        at = aware(action.done_at or action.updated_at) or datetime.now(UTC)
        address = email_tags.address_anonymous_id(action.recipient)
        self._produce(
            build_alias(address, identity["userId"], library=LIBRARY, message_id=f"{OWN_EVENTS}{action.id}-address",
                        timestamp=at)
        )  # fmt: skip

    def _produce_event(
        self, name: str, customer_id: str, message_id: str, properties: dict[str, Any], at: datetime
    ) -> None:
        if self.producer is None:
            return
        self._produce(self._event(name, customer_id, message_id, properties, at))

    def _produce(self, event: Event) -> None:
        """``event``: built (and validated) by :mod:`ecrm_schemas.builders`."""
        assert self.producer is not None
        headers = own_event_headers()  # the mark of the service's own events (ecrm_schemas.own_events)
        self.producer.produce(EVENTS.name, encode_event(event), key=event.customer_key.encode(), headers=headers)

    def _event(
        self, name: str, customer_id: str, message_id: str, properties: dict[str, Any], at: datetime
    ) -> TrackEvent:
        """A track event about the customer (their user id when known, else their anonymous id)."""
        return build_track(name, self._identity(customer_id), properties, library=LIBRARY, message_id=message_id,
                           timestamp=at)  # fmt: skip


COMMENT_PROPERTIES: dict[str, str] = {CatalogEvent.NPS_ANSWERED: "comment", CatalogEvent.SURVEY_ANSWERED: "text"}
"""The property that holds a customer's own words, by event: the first note of a case it opens."""


def customer_comment(trigger: dict[str, Any]) -> tuple[str, str] | None:
    """(author, text) of the comment in a rule's triggering event, if it has one."""
    name = trigger.get("event")
    comment = (trigger.get("properties") or {}).get(COMMENT_PROPERTIES.get(name or "", ""))
    if isinstance(comment, str) and comment.strip():
        return f"customer ({name})", comment.strip()[:10_000]
    return None


def _render_failed(action: Action, exc: RenderError, template: str | None = None, part: str | None = None) -> GiveUp:
    """Log one ``render_failed`` line (where, and the fault's class: never the message, which
    may quote the customer's data) and give the action up."""
    log.warning("render_failed", rule=action.rule_id, template=template, action=action.id,
                part=exc.part or part, error=exc.error, line=exc.line)  # fmt: skip
    return GiveUp(f"render_failed: {exc}")


def _customer_kind(action: Action, profile: dict[str, Any]) -> str:
    """``userId`` or ``anonymousId``: how the action's customer is named in events."""
    return "userId" if profile.get("user_id") == action.customer_id or not profile else "anonymousId"


def decision_event(action: Action) -> tuple[str, str, str, dict[str, Any], datetime]:
    """The event that reports ``action``'s outcome: (name, customer, message id, properties, time)."""
    payload = orjson.loads(action.payload) if action.payload else {}
    spec = payload.get("action") or {}
    at = aware(action.done_at or action.updated_at) or datetime.now(UTC)
    base = {
        "decision_id": action.id,
        "rule_id": action.rule_id,
        "action": action.kind,
        "channel": "email" if action.kind == "email" else None,
    }
    message_id = f"{OWN_EVENTS}{action.id}-{action.status}"
    if action.kind == "email" and action.status == "sent":
        name, props = (
            CatalogEvent.EMAIL_SENT,
            {
                "email_id": action.id,
                "rule_id": action.rule_id,
                "template": spec.get("template"),
                "subject": action.subject,
            },
        )
    elif action.status in ("suppressed", "cancelled"):
        name, props = CatalogEvent.MESSAGE_SUPPRESSED, {**base, "reason": action.reason or action.status}
    elif action.status == "deferred":
        until = aware(action.due_at) or at
        name, props = (
            CatalogEvent.MESSAGE_DEFERRED,
            {**base, "until": until.isoformat(), "reason": action.reason or "deferred"},
        )
    elif action.status == "failed":
        name, props = CatalogEvent.MESSAGE_FAILED, {**base, "reason": action.reason or "failed"}
    elif action.kind == "case":  # ``Case Opened`` itself comes from the case's own outbox event
        name, props = (
            CatalogEvent.ACTION_COMPLETED,
            {**base, "detail": {"reason": action.reason, "case_id": action.recipient}},
        )
    elif action.kind == "reward":
        name, props = (
            CatalogEvent.REWARD_ISSUED,
            {"reward_id": action.id, "kind": spec.get("reward", "reward"), "rule_id": action.rule_id},
        )
    else:
        name, props = CatalogEvent.ACTION_COMPLETED, {**base, "detail": {"reason": action.reason}}
    return name, action.customer_id, message_id, props, at
