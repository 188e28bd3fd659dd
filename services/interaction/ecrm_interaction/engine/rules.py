"""What marketers configure: rules and email templates (pure models).

A rule is a trigger, optional conditions on the customer at decision time, an optional wait
that later events can cancel, and actions::

    id: cart-reminder
    name: Remind of the cart an hour later, unless they ordered
    category: marketing                      # or onboarding (not capped), transactional (no caps, no quiet hours)
    trigger: {kind: event, event: Product Added, where: {price: {gte: 20}}}
    conditions: {kind: all, conditions: [{kind: consent, channel: email},
                                         {kind: trait, trait: orders, op: gte, value: 1}]}
    wait: {duration: 1h, cancel_on: [{event: Order Completed}]}
    cooldown: 3d                             # this rule fires at most once per customer in 3 days
    max_event_age: 2h                        # an older Product Added (late, imported) fires nothing
    actions:
      - {kind: email, template: cart-reminder, recommendations: 4}

Triggers: an event (its type or track name, with property filters), a segment entered or
exited, a trait crossing (``computed.churn_risk`` becomes ``high``, ``computed.engagement_score``
drops below 20), or a cron schedule over a segment's members. Actions: an email, a signed
webhook, a notification to a team (email and/or chat webhook), a customer-service case,
loyalty points, a reward.
"""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from ecrm_interaction.engine.rendering import check_template
from ecrm_schemas.actions import ActionKind
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.conditions import AllOf, AnyOf, Int64, NoneOf, TraitCondition
from ecrm_schemas.profile_paths import TriggerPath
from ecrm_schemas.segments import SegmentId

Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
Scalar = str | Int64 | float | bool
Points = Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``90`` (seconds), ``"30m"``, ``"1h"``, ``"7d"``, ``"2w"`` → a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    raise ValueError("a duration is a number of seconds or like 30m, 1h, 7d")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
DEFAULT_MAX_EVENT_AGE = timedelta(days=1)
"""How old a triggering event may be for an event-triggered rule without ``max_event_age``:
a day covers SDKs that queue events offline and a pipeline catching up after an outage."""

Comparison = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists"]
"""The operators of :data:`ecrm_schemas.conditions.OPERATORS` an event's property filter takes."""
PropertyFilter = Scalar | list[Scalar] | dict[Comparison, Scalar | list[Scalar] | bool]
"""A value to equal, a list to be among, or ``{op: value}`` (``{gte: 100}``, ``{exists: true}``)."""


class EventMatch(BaseModel):
    """An event by its type (``identify``, ``page``) or track name, with property filters."""

    model_config = ConfigDict(extra="forbid")
    event: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    where: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")], PropertyFilter] = Field(
        default_factory=dict
    )


class EventTrigger(EventMatch):
    kind: Literal["event"] = "event"


class SegmentTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["segment"] = "segment"
    segment: SegmentId
    change: Literal["entered", "exited"] = "entered"


class TraitTrigger(BaseModel):
    """Fires when a profile value crosses into the given state: ``becomes`` a value, or goes
    ``above``/``below`` a number it was not above/below before. ``trait``: a profile field or
    computed trait a profile change names (:data:`~ecrm_schemas.profile_paths.TriggerPath`), or
    ``loyalty.tier`` / ``loyalty.points``, the loyalty program's own."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["trait"] = "trait"
    trait: TriggerPath
    becomes: Scalar | None = None
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_crossing(self) -> TraitTrigger:
        if sum(x is not None for x in (self.becomes, self.above, self.below)) != 1:
            raise ValueError("a trait trigger needs exactly one of becomes, above, below")
        return self


class ScheduleTrigger(BaseModel):
    """Fires for every member of ``segment`` (every known customer when none) at each time
    of the cron expression (``0 9 * * MON``), in ``timezone``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["schedule"] = "schedule"
    cron: Annotated[str, StringConstraints(min_length=9, max_length=100)]
    timezone: str = "UTC"
    segment: SegmentId | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        from ecrm_interaction.engine.schedules import EPOCH

        try:
            CronSim(value, EPOCH)
        except CronSimError as exc:
            raise ValueError(f"not a cron expression: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


Trigger = Annotated[EventTrigger | SegmentTrigger | TraitTrigger | ScheduleTrigger, Field(discriminator="kind")]


class InSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["segment"] = "segment"
    segment: SegmentId
    member: bool = True


class HasConsent(BaseModel):
    """The customer granted consent for ``channel`` (a withdrawn or unknown consent fails)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["consent"] = "consent"
    channel: Literal["email", "sms", "push", "webhook"] = "email"


if TYPE_CHECKING:  # mypy does not follow a recursive TypeAliasType
    RuleCondition = TraitCondition | InSegment | HasConsent | AllOf[Any] | AnyOf[Any] | NoneOf[Any]
else:
    RuleCondition = TypeAliasType(
        "RuleCondition",
        Annotated[
            TraitCondition
            | InSegment
            | HasConsent
            | AllOf["RuleCondition"]
            | AnyOf["RuleCondition"]
            | NoneOf["RuleCondition"],
            Field(discriminator="kind"),
        ],
    )
"""A rule's conditions: traits, segment membership and consent, combined (:mod:`ecrm_schemas.conditions`)."""
Condition = RuleCondition


class Wait(BaseModel):
    """Act ``duration`` after the trigger, unless one of ``cancel_on`` happens meanwhile."""

    model_config = ConfigDict(extra="forbid")
    duration: Duration
    cancel_on: list[EventMatch] = Field(default_factory=list)


class EmailAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[ActionKind.EMAIL] = ActionKind.EMAIL
    template: Id
    recommendations: int = Field(default=0, ge=0, le=20)
    """How many recommended products the template gets as ``recommendations``."""


class WebhookAction(BaseModel):
    """POST the decision (customer, trigger, rule) as JSON, signed per Standard Webhooks."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal[ActionKind.WEBHOOK] = ActionKind.WEBHOOK
    url: HttpUrl
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)]
    """The signing secret (``whsec_`` + base64, or any string of 16+ characters)."""


class NotifyAction(BaseModel):
    """Tell a marketer or a team about the customer and why: by email and/or a chat webhook
    (Slack-compatible ``{"text": ...}``)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal[ActionKind.NOTIFY] = ActionKind.NOTIFY
    emails: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(default_factory=list)
    chat_webhook: HttpUrl | None = None
    message: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = (
        "{{ rule.name }}: {{ profile.customer_id }} ({{ profile.email or 'no email' }}) because {{ reason }}"
    )

    @model_validator(mode="after")
    def _somewhere(self) -> NotifyAction:
        if not self.emails and self.chat_webhook is None:
            raise ValueError("a notification needs emails or a chat_webhook")
        return self


class CaseAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[ActionKind.CASE] = ActionKind.CASE
    subject: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    """A template, like the message of a notification."""
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    sla: Duration = timedelta(hours=24)
    assignee: str | None = None


class PointsAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[ActionKind.POINTS] = ActionKind.POINTS
    points: int = Field(ge=-1_000_000, le=1_000_000)
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "rule"


class RewardAction(BaseModel):
    """Issue a reward code; a later email action of the same rule shows it as ``reward.code``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal[ActionKind.REWARD] = ActionKind.REWARD
    reward: Id
    """What is given (``gold-welcome-voucher``): the reward's kind."""
    points_cost: int = Field(default=0, ge=0, le=1_000_000_000)


Action = Annotated[
    EmailAction | WebhookAction | NotifyAction | CaseAction | PointsAction | RewardAction, Field(discriminator="kind")
]
"""A rule's action, told apart by its :class:`~ecrm_schemas.actions.ActionKind` (a new kind joins this
union, the enum, the catalog and the executor registry: ``tests/test_action_kinds.py`` checks)."""


class RuleSpec(BaseModel):
    """A rule as marketers write it (YAML or the REST API)."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    enabled: bool = True
    category: Literal["marketing", "onboarding", "transactional"] = "marketing"
    """Transactional messages (receipts, password resets) are exempt from frequency caps and
    quiet hours, and need no marketing consent; unsubscribed and suppressed addresses never get mail.
    Onboarding messages (a welcome) are marketing that the frequency caps neither hold back nor
    count, so a welcome does not use up the day's one marketing message."""
    trigger: Trigger
    conditions: Condition | None = None
    wait: Wait | None = None
    cooldown: Duration | None = None
    once_per_customer: bool = False
    max_event_age: Duration | None = None
    """The oldest a triggering event (or segment change) may be, by its own time, when the rule
    decides: an older one does not fire the rule (a ``max_event_age`` skip in the decision log),
    so a late-delivered or imported past event sends nothing. Event triggers default to
    :data:`DEFAULT_MAX_EVENT_AGE`; other triggers have no limit unless one is set."""
    actions: list[Action] = Field(min_length=1, max_length=10)

    @property
    def event_age_limit(self) -> timedelta | None:
        if self.max_event_age is not None:
            return self.max_event_age
        return DEFAULT_MAX_EVENT_AGE if isinstance(self.trigger, EventTrigger) else None

    @model_validator(mode="before")
    @classmethod
    def _walking_skeleton_shape(cls, data: Any) -> Any:
        """Rules of the first version: ``trigger_event`` and ``template_id``."""
        if isinstance(data, dict) and "trigger_event" in data:
            data = dict(data)
            data["trigger"] = {"kind": "event", "event": data.pop("trigger_event")}
            data["actions"] = [{"kind": "email", "template": data.pop("template_id")}]
        return data

    def email_templates(self) -> set[str]:
        return {a.template for a in self.actions if isinstance(a, EmailAction)}


class TemplateParts(BaseModel):
    """An email template's parts (Jinja2, sandboxed): subject, text part, optional HTML part.

    Each part must compile (``template_syntax`` errors name the part and the line), so a
    broken template is refused when it is saved instead of failing every send.
    """

    model_config = ConfigDict(extra="forbid")

    subject: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    text: Annotated[str, StringConstraints(min_length=1)]
    html: str | None = None

    @field_validator("subject", "text", "html")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)


class TemplateSpec(TemplateParts):
    """An email template: its id and its parts."""

    id: Id


class TierSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Id
    min_points: int = Field(ge=0, le=1_000_000_000)


DEFAULT_ENGAGEMENT_POINTS: dict[str, int] = {
    CatalogEvent.SURVEY_ANSWERED.value: 20,
    CatalogEvent.NPS_ANSWERED.value: 20,
    CatalogEvent.EMAIL_LINK_CLICKED.value: 2,
}
"""A loyalty program's engagement points when it names none, by event."""


class LoyaltyProgram(BaseModel):
    """Points per purchase (per unit of currency) and per engagement event, and the tiers."""

    model_config = ConfigDict(extra="forbid")

    points_per_unit: float = Field(default=1.0, ge=0)
    events: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], Points] = Field(
        default_factory=lambda: dict(DEFAULT_ENGAGEMENT_POINTS)
    )
    tiers: list[TierSpec] = Field(
        default_factory=lambda: [
            TierSpec(name="bronze", min_points=0),
            TierSpec(name="silver", min_points=500),
            TierSpec(name="gold", min_points=2000),
            TierSpec(name="platinum", min_points=5000),
        ],
        min_length=1,
    )

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: list[TierSpec]) -> list[TierSpec]:
        if tiers[0].min_points != 0 or any(a.min_points >= b.min_points for a, b in pairwise(tiers)):
            raise ValueError("tiers start at 0 points and ascend")
        return tiers
