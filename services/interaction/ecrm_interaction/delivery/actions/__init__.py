"""What a rule's actions do: one executor module per :class:`~ecrm_schemas.actions.ActionKind`,
behind one protocol (:class:`~ecrm_interaction.delivery.actions.base.ActionExecutor`) and one
registry (:data:`REGISTRY`), which the dispatcher and the outbox relay use.

Adding an action kind (say ``sms``) touches three places:

1. ``schemas/ecrm_schemas/actions.py``: the kind in :class:`~ecrm_schemas.actions.ActionKind`
   (the catalog's decision events take it from there), and in ``catalog.py`` the event that
   reports it carried out, if it is not ``Action Completed``;
2. ``engine/rules.py``: its rule spec (``SmsAction`` with ``kind: Literal[ActionKind.SMS]``),
   joined to the ``Action`` union;
3. ``delivery/actions/sms.py``: its executor (``kind``, ``spec``, ``channel``, ``build``,
   ``execute``, ``completed``), registered in :data:`REGISTRY` below.

``tests/test_action_kinds.py`` fails, saying what to add where, when the enum, the rule union,
this registry and the catalog disagree (an event the relay would build that the catalog refuses
would otherwise stop the relay on the same rows for ever).
"""

from __future__ import annotations

from ecrm_interaction.delivery.actions.base import (
    ActionExecutor,
    GiveUp,
    Job,
    Outcome,
    Retry,
    Wiring,
)
from ecrm_interaction.delivery.actions.case import CaseExecutor
from ecrm_interaction.delivery.actions.email import EmailExecutor
from ecrm_interaction.delivery.actions.notify import NotifyExecutor
from ecrm_interaction.delivery.actions.points import PointsExecutor
from ecrm_interaction.delivery.actions.reward import RewardExecutor
from ecrm_interaction.delivery.actions.webhook import WebhookExecutor
from ecrm_schemas.actions import ActionKind

REGISTRY: dict[ActionKind, type[ActionExecutor]] = {
    executor.kind: executor
    for executor in (EmailExecutor, WebhookExecutor, NotifyExecutor, CaseExecutor, PointsExecutor, RewardExecutor)
}
"""The executor of each action kind."""


def build_executors(wiring: Wiring) -> dict[ActionKind, ActionExecutor]:
    """One executor per registered kind, each built from what it needs of ``wiring``."""
    return {kind: executor.build(wiring) for kind, executor in REGISTRY.items()}


__all__ = ["REGISTRY", "ActionExecutor", "GiveUp", "Job", "Outcome", "Retry", "Wiring", "build_executors"]
