"""What a rule can do, and where an action stands: the one owner of both lists.

The catalog's decision events (:class:`ecrm_schemas.catalog.MessageFailed` …) carry an
:class:`ActionKind`; the interaction service's rule actions use its values as their
discriminator, its executors are registered by it, and its ``actions`` table stores its
values. ``tests/test_action_kinds.py`` fails when one of those lists leaves a kind out.
"""

from __future__ import annotations

from enum import StrEnum


class ActionKind(StrEnum):
    """A kind of rule action."""

    EMAIL = "email"
    """A templated email to the customer (through the contact policy)."""
    WEBHOOK = "webhook"
    """A signed POST of the decision to a URL."""
    NOTIFY = "notify"
    """A message to a team: emails and/or a chat webhook."""
    CASE = "case"
    """A customer-service case."""
    POINTS = "points"
    """Loyalty points added to (or taken from) the customer's balance."""
    REWARD = "reward"
    """A reward code issued to the customer."""


class ActionStatus(StrEnum):
    """Where an action stands: open ones (:data:`OPEN`) are still to be carried out, final
    ones (:data:`FINAL`) are reported on the events topic."""

    WAITING = "waiting"
    """A rule's wait runs (later events may cancel it)."""
    PENDING = "pending"
    """Due (or retrying after a failed delivery)."""
    DEFERRED = "deferred"
    """A message held back until the customer's quiet hours end."""
    SENT = "sent"
    """An email the mail server accepted."""
    DONE = "done"
    """Any other action carried out."""
    SUPPRESSED = "suppressed"
    """The contact policy refused the message."""
    CANCELLED = "cancelled"
    """Cancelled before it was carried out (a ``cancel_on`` event, the rule switched off)."""
    FAILED = "failed"
    """It could not be carried out (retries ran out, no template, an unsafe target)."""


OPEN: tuple[ActionStatus, ...] = (ActionStatus.WAITING, ActionStatus.PENDING, ActionStatus.DEFERRED)
"""Statuses of actions not carried out yet."""
FINAL: tuple[ActionStatus, ...] = (
    ActionStatus.SENT,
    ActionStatus.DONE,
    ActionStatus.SUPPRESSED,
    ActionStatus.CANCELLED,
    ActionStatus.FAILED,
    ActionStatus.DEFERRED,
)
"""Statuses reported on the events topic (``deferred`` too: it says until when)."""
