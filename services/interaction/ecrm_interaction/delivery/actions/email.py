"""``email``: a templated message to the customer, through the contact policy (consent,
unsubscribes, suppressions, frequency caps, quiet hours), click-tracked, with our ESP tags.

An email counts as sent once the SMTP server accepted it; the dispatcher stores that with its
batch. A crash in between sends it again, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

import orjson
import structlog
from pydantic import BaseModel

import ecrm_schemas.email_tags as email_tags
from ecrm_interaction import metrics
from ecrm_interaction.delivery.actions.base import (
    GiveUp,
    Job,
    Outcome,
    Recommender,
    Retry,
    Wiring,
    render_failed,
)
from ecrm_interaction.delivery.smtp_sender import Mailer, compose
from ecrm_interaction.engine.contact_policy import Contact, History, PolicySettings
from ecrm_interaction.engine.contact_policy import decide as policy_decision
from ecrm_interaction.engine.loyalty import tier_of
from ecrm_interaction.engine.rendering import RenderError, add_tracking, message_context, render_email
from ecrm_interaction.engine.rules import EmailAction
from ecrm_interaction.engine.unsubscribe import UnsubscribeToken, sign_unsubscribe
from ecrm_interaction.storage import actions as action_rows
from ecrm_interaction.storage import loyalty
from ecrm_interaction.storage.actions import Finished
from ecrm_interaction.storage.contacts import contacts, history_of, message_history
from ecrm_interaction.storage.models import Action
from ecrm_schemas.actions import ActionKind, ActionStatus
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.tracking import TrackingToken, sign, tracking_url

if TYPE_CHECKING:
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage.store import Store

log = structlog.get_logger()


LEDGER_KINDS = frozenset({ActionKind.POINTS, ActionKind.REWARD})
"""Kinds whose actions change the customer's balance."""


def customer_kind(action: Action, profile: dict[str, Any]) -> str:
    """``userId`` or ``anonymousId``: how the action's customer is named in events."""
    return "userId" if profile.get("user_id") == action.customer_id or not profile else "anonymousId"


def broadcast_of(action: Action) -> tuple[str | None, str | None]:
    """The broadcast a message belongs to and its A/B variant (None for a rule's message): its
    events carry them as ``campaign_id`` and ``variant``, so reports count it per broadcast."""
    if not action.cause.startswith("b:"):
        return None, None
    placed = orjson.loads(action.payload or "{}").get("broadcast") or {}
    return placed.get("id") or action.cause[2:], placed.get("variant")


class Links:
    """The signed links of a customer's email: unsubscribe pages, click and open tracking, ESP tags."""

    def __init__(self, settings: InteractionSettings) -> None:
        self.secret = settings.tracking_secret.get_secret_value()
        self.public_url = settings.interaction_public_url
        self.tracking = settings.interaction_tracking_url
        self.mailbox = settings.unsubscribe_mailbox
        self.providers = settings.email_providers
        self.ses_configuration_set = settings.interaction_ses_configuration_set

    @property
    def unsubscribe_pages(self) -> str:
        """Where unsubscribe links point (never click-tracked)."""
        return f"{self.public_url.rstrip('/')}/u/"

    def unsubscribe_token(self, customer_id: str, email_id: str | None) -> str:
        """The signed token of an unsubscribe link (page URL: :attr:`unsubscribe_pages` + token)."""
        return sign_unsubscribe(UnsubscribeToken(customer_id=customer_id, email_id=email_id), self.secret)

    def unsubscribe_mailto(self, token: str) -> str | None:
        """The List-Unsubscribe ``mailto:`` target (without the scheme): the mailbox, the token as subject."""
        return f"{self.mailbox}?subject=unsubscribe%20{token}" if self.mailbox else None

    def provider_headers(self, action: Action, profile: dict[str, Any]) -> dict[str, str]:
        """Our tags, in the header of every configured ESP (customer mail only: a bounce of a
        team notification must never suppress the customer it was about)."""
        customer = {"user_id" if customer_kind(action, profile) == "userId" else "anonymous_id": action.customer_id}
        tags = email_tags.message_tags(
            action.id, rule_id=action.rule_id, campaign_id=broadcast_of(action)[0], **customer
        )
        return email_tags.provider_headers(tags, self.providers, ses_configuration_set=self.ses_configuration_set)

    def tracking_url(self, action: Action, profile: dict[str, Any], url: str | None) -> str:
        campaign, variant = broadcast_of(action)
        token = TrackingToken(
            email_id=action.id,
            customer=action.customer_id,
            customer_kind=customer_kind(action, profile),  # type: ignore[arg-type]
            rule_id=action.rule_id,
            campaign_id=campaign,
            variant=variant,
            url=url,
        )
        return tracking_url(self.tracking, sign(token, self.secret), click=url is not None)


def batch_history(job: Job, sent: list[datetime], rule_last: datetime | None, since: datetime) -> History:
    """The stored history plus what the customer's earlier actions of this batch did."""
    sent = list(sent)
    for earlier, outcome in job.earlier:
        if outcome.status not in (ActionStatus.SENT, ActionStatus.DONE):
            continue
        if earlier.kind == ActionKind.EMAIL and outcome.status == ActionStatus.SENT and earlier.category == "marketing":
            sent.append(job.now)
        if earlier.rule_id == job.action.rule_id:
            rule_last = job.now if rule_last is None else max(rule_last, job.now)
    return History([s for s in sent if s >= since], rule_last)


class EmailExecutor:
    kind: ClassVar[ActionKind] = ActionKind.EMAIL
    spec: ClassVar[type[BaseModel]] = EmailAction
    channel: ClassVar[str | None] = "email"

    def __init__(
        self, store: Store, mailer: Mailer, policy: PolicySettings, links: Links, recommender: Recommender | None
    ) -> None:
        self.store, self.mailer, self.policy, self.links, self.recommender = store, mailer, policy, links, recommender
        self.window = max((cap.window for cap in policy.caps), default=timedelta(0))
        """The longest frequency cap's window."""

    @classmethod
    def build(cls, wiring: Wiring) -> Self:
        return cls(wiring.store, wiring.mailer, wiring.settings.policy(), Links(wiring.settings), wiring.recommender)

    async def execute(self, job: Job) -> Outcome:
        spec, action, payload, now = job.spec, job.action, job.payload, job.now
        assert isinstance(spec, EmailAction)
        profile = job.profile
        reads = job.reads
        contact_row = reads.contacts.get(action.customer_id)
        if contact_row is None:  # not read with the batch
            with self.store.sessions() as session:
                contact_row = contacts(session, {action.customer_id: profile.get("email")})[action.customer_id]
        address = contact_row.email or profile.get("email")
        contact = Contact(
            address, contact_row.timezone, contact_row.consent.get("email"), contact_row.unsubscribed,
            contact_row.suppressed,
        )  # fmt: skip
        rule = reads.rules.get(action.rule_id) if action.rule_id else None
        cooldown = rule.cooldown if rule is not None else None
        since = now - max(self.window, cooldown or timedelta(0))
        if reads.since is not None and reads.since <= since and action.customer_id in reads.messages:
            sent, rule_last = history_of(reads.messages[action.customer_id], action.rule_id, since)
        else:
            sent, rule_last = await asyncio.to_thread(
                self.store.read, message_history, action.customer_id, action.rule_id, since
            )
        verdict = policy_decision(
            contact,
            batch_history(job, sent, rule_last, since),
            action.category,  # type: ignore[arg-type]
            cooldown,
            now,
            self.policy,
        )
        if verdict.outcome == "suppress":
            return Outcome(ActionStatus.SUPPRESSED, verdict.reason)
        if verdict.outcome == "defer":
            assert verdict.until is not None
            return Outcome(ActionStatus.DEFERRED, verdict.reason, until=verdict.until)
        assert address is not None
        template = job.reads.templates.get(spec.template)
        if template is None:
            raise GiveUp(f"template {spec.template!r} does not exist")
        recommendations = []
        if spec.recommendations and self.recommender is not None:
            recommendations = await asyncio.to_thread(self.recommender, action.customer_id, spec.recommendations)
        links = self.links
        unsubscribe_token = links.unsubscribe_token(action.customer_id, action.id)
        unsubscribe = f"{links.unsubscribe_pages}{unsubscribe_token}"
        context = message_context(
            payload,
            rule_id=action.rule_id or "",
            recommendations=recommendations,
            loyalty=await asyncio.to_thread(self._loyalty, job),
            unsubscribe_url=unsubscribe,
        )
        try:
            rendered = render_email(template, context)
        except RenderError as exc:
            raise render_failed(action, exc, template.id) from exc
        rendered = add_tracking(
            rendered,
            lambda url: links.tracking_url(action, profile, url),
            links.tracking_url(action, profile, None),
            untracked=(links.unsubscribe_pages,),
        )
        listed = action.category != "transactional"  # marketing and onboarding mail can be left
        message = compose(
            rendered,
            sender=self.mailer.sender,
            recipient=address,
            send_id=action.id,
            rule_id=action.rule_id or "",
            unsubscribe_url=unsubscribe if listed else None,
            unsubscribe_mailto=links.unsubscribe_mailto(unsubscribe_token) if listed else None,
            headers=links.provider_headers(action, profile),
        )
        started = time.perf_counter()
        accepted = False

        sent_outcome = Outcome(ActionStatus.SENT, verdict.reason, recipient=address, subject=rendered.subject)

        async def record_accepted() -> None:
            # Recorded at once, not with the batch: a crash from here on cannot send it again, so
            # only the sends in flight at a kill can go twice (the batch's finish writes the same).
            nonlocal accepted
            accepted = True
            metrics.SEND_SECONDS.observe(time.perf_counter() - started)
            sent = Finished(action.id, ActionStatus.SENT, verdict.reason[:300], now, action.attempts + 1,
                            action.dedup_key, recipient=address, subject=rendered.subject)  # fmt: skip
            await asyncio.to_thread(self.store.write, action_rows.finish, [sent], [])

        try:
            await self.mailer.send(message, accepted=record_accepted)
        except Exception as exc:
            if accepted:
                return sent_outcome  # accepted; only closing the session failed
            raise Retry(f"smtp: {type(exc).__name__}") from exc
        log.info("email_sent", action=action.id, rule=action.rule_id)
        return sent_outcome

    def _loyalty(self, job: Job) -> dict[str, Any]:
        """The customer's points and tier; the batch's read unless an earlier action of theirs in
        the batch may have changed them."""
        customer_id, program = job.action.customer_id, job.reads.program
        points = job.reads.balances.get(customer_id)
        if points is None or any(a.kind in LEDGER_KINDS for a, _ in job.earlier):
            points = self.store.read(loyalty.balance, customer_id)
        return {"points": points, "tier": tier_of(points, program)}

    @staticmethod
    def completed(action: Action, spec: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        properties = {"email_id": action.id, "rule_id": action.rule_id, "template": spec.get("template"),
                      "subject": action.subject}  # fmt: skip
        campaign, variant = broadcast_of(action)
        if campaign:
            properties |= {"campaign_id": campaign, "variant": variant}
        return CatalogEvent.EMAIL_SENT, properties
