"""The contract between the dispatcher and an action's executor.

The dispatcher claims a batch, turns each action into a :class:`Job` (the row, its payload
with the profile it acts with, its validated rule action) and awaits
:meth:`ActionExecutor.execute`, which carries it out and returns an :class:`Outcome`, or
raises :class:`Retry` (try again later, with backoff) or :class:`GiveUp` (it fails for good).
Executors never write the action's row: the dispatcher records every outcome of the batch at
once. What they change elsewhere (a case, a ledger entry) happens once per ``dedup_key``, so
carrying an action out again after a crash changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import structlog
from pydantic import BaseModel

from ecrm_interaction.delivery.webhooks import UnsafeWebhookTarget, post
from ecrm_interaction.engine.rendering import RenderError
from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec, TemplateSpec
from ecrm_interaction.storage.contacts import ContactRow, SentMessage
from ecrm_interaction.storage.models import Action
from ecrm_schemas.actions import ActionKind, ActionStatus
from ecrm_schemas.catalog import CatalogEvent

if TYPE_CHECKING:
    from ecrm_interaction.consumer.intake import IntakeStep
    from ecrm_interaction.delivery.smtp_sender import Mailer
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage.store import Store

log = structlog.get_logger()
Recommender = Callable[[str, int], list[dict[str, Any]]]
"""(customer id, how many) → recommended products."""


class Retry(Exception):
    """A delivery failed in a way that may pass (the server is down): try again later."""


class GiveUp(Exception):
    """A delivery can never succeed (no template, an unsafe webhook target)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of an action: a final status with its reason, or ``deferred`` ``until``."""

    status: ActionStatus
    reason: str
    recipient: str | None = None
    subject: str | None = None
    until: datetime | None = None
    """When a deferred action is due again."""


@dataclass(frozen=True, slots=True)
class BatchReads:
    """What every action of a batch reads alike, read once per batch."""

    rules: dict[str, RuleSpec]
    """The enabled rules, by id."""
    templates: dict[str, TemplateSpec]
    program: LoyaltyProgram
    contacts: dict[str, ContactRow] = field(default_factory=dict)
    """The email actions' customers' contacts (:func:`ecrm_interaction.storage.contacts.contacts`)."""
    messages: dict[str, list[SentMessage]] = field(default_factory=dict)
    """What reached them since :attr:`since`."""
    since: datetime | None = None
    balances: dict[str, int] = field(default_factory=dict)
    """Their loyalty balances when the batch was claimed."""


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed action to carry out."""

    action: Action
    payload: dict[str, Any]
    """The planned payload; ``payload["profile"]`` is the profile it acts with."""
    spec: BaseModel
    """The rule action (the executor's :attr:`ActionExecutor.spec`)."""
    reads: BatchReads
    now: datetime
    earlier: Sequence[tuple[Action, Outcome]] = ()
    """The customer's actions finished earlier in the same batch (not stored yet): a frequency
    cap counts the message sent just before."""

    @property
    def profile(self) -> dict[str, Any]:
        return self.payload.get("profile") or {}


@dataclass(frozen=True, slots=True)
class Wiring:
    """Everything an executor may be built from; each takes only what it needs."""

    settings: InteractionSettings
    store: Store
    mailer: Mailer
    intake: IntakeStep
    recommender: Recommender | None = None


class ActionExecutor(Protocol):
    """Carries out the actions of one :class:`~ecrm_schemas.actions.ActionKind`."""

    kind: ClassVar[ActionKind]
    spec: ClassVar[type[BaseModel]]
    """The rule action model of :attr:`kind` (a member of ``engine.rules.Action``)."""
    channel: ClassVar[str | None]
    """The channel decision events name (``email``), if the action is a message."""

    @classmethod
    def build(cls, wiring: Wiring) -> Self: ...

    async def execute(self, job: Job) -> Outcome: ...

    @staticmethod
    def completed(action: Action, spec: dict[str, Any], base: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The event that reports the action carried out (``sent``/``done``): (name, properties).
        ``base`` holds the decision's common properties (``decision_id``, ``rule_id``, ``action``,
        ``channel``)."""
        ...


def action_completed(action: Action, base: dict[str, Any], **detail: Any) -> tuple[str, dict[str, Any]]:
    """``Action Completed`` with the action's reason (and ``detail``)."""
    return CatalogEvent.ACTION_COMPLETED, {**base, "detail": {"reason": action.reason, **detail}}


def done(reason: str, *, recipient: str | None = None, subject: str | None = None) -> Outcome:
    return Outcome(ActionStatus.DONE, reason, recipient=recipient, subject=subject)


def render_failed(action: Action, exc: RenderError, template: str | None = None, part: str | None = None) -> GiveUp:
    """Log one ``render_failed`` line (where, and the fault's class: never the message, which
    may quote the customer's data) and give the action up."""
    log.warning("render_failed", rule=action.rule_id, template=template, action=action.id,
                part=exc.part or part, error=exc.error, line=exc.line)  # fmt: skip
    return GiveUp(f"render_failed: {exc}")


async def post_or_raise(url: str, body: str, headers: dict[str, str], timeout_s: float, allowed: list[str]) -> None:
    """POST ``body``: an unsafe target gives up, any other failure retries."""
    try:
        await post(url, body, headers, timeout_s=timeout_s, allowed=allowed)
    except UnsafeWebhookTarget as exc:
        raise GiveUp(f"unsafe_target: {exc}") from exc
    except Exception as exc:
        raise Retry(f"webhook: {type(exc).__name__}") from exc
