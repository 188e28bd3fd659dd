"""What each rule did, counted in the relational store: how often it fired, what it sent and
what the contact policy or its own checks held back, and why (the rules page's figures; the
email engagement and conversions come from ClickHouse, :mod:`ecrm_interaction.api.services.rule_figures`).

Aggregated in SQL, one statement per table, over a period: never a row per action in Python;
the actions' figures are read from the index ``ix_actions_rule_figures`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ecrm_interaction.storage.models import Action, SkippedDecision
from ecrm_schemas.actions import ActionKind, ActionStatus


@dataclass
class DecisionFigures:
    """One rule's decisions since the period's start."""

    decisions: int = 0
    """Actions planned (a firing plans one per action of the rule)."""
    triggered: int = 0
    """Firings: the skipped ones here; :func:`firings` adds those that planned actions."""
    sent: int = 0
    """Emails the mail server accepted."""
    done: int = 0
    """Other actions carried out (webhooks, cases, points...)."""
    suppressed: dict[str, int] = field(default_factory=dict)
    """Messages the contact policy refused, by reason (``no_consent``, ``unsubscribed``, a cap...)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Firings that did nothing, by reason (``cooldown``, ``conditions_not_met``, ``max_event_age``...)."""
    open: int = 0
    """Actions still to be carried out (waiting, pending, deferred)."""
    failed: int = 0
    cancelled: int = 0


def decision_figures(session: Session, since: datetime) -> dict[str, DecisionFigures]:
    """Every rule's figures for actions created (and skips last seen) since ``since``, by rule id."""
    figures: dict[str, DecisionFigures] = {}

    def of(rule_id: str | None) -> DecisionFigures:
        return figures.setdefault(rule_id or "", DecisionFigures())

    recent = Action.rule_id.is_not(None), Action.created_at >= since
    outcomes = select(Action.rule_id, Action.kind, Action.status, Action.reason, func.count())
    for rule_id, kind, status, reason, n in session.execute(
        outcomes.where(*recent).group_by(Action.rule_id, Action.kind, Action.status, Action.reason)
    ):
        rule = of(rule_id)
        rule.decisions += n
        if status == ActionStatus.SENT and kind == ActionKind.EMAIL:
            rule.sent += n
        elif status == ActionStatus.DONE:
            rule.done += n
        elif status == ActionStatus.SUPPRESSED:
            rule.suppressed[reason or "unknown"] = rule.suppressed.get(reason or "unknown", 0) + n
        elif status == ActionStatus.FAILED:
            rule.failed += n
        elif status == ActionStatus.CANCELLED:
            rule.cancelled += n
        else:
            rule.open += n
    skips = select(SkippedDecision.rule_id, SkippedDecision.reason, func.sum(SkippedDecision.count))
    for rule_id, reason, n in session.execute(
        skips.where(SkippedDecision.last_at >= since).group_by(SkippedDecision.rule_id, SkippedDecision.reason)
    ):
        rule = of(rule_id)
        rule.skipped[reason] = int(n or 0)
        rule.triggered += int(n or 0)
    return figures


def firings(figures: DecisionFigures, actions_per_firing: int) -> int:
    """How often the rule fired: its decisions over the actions each firing plans (the rule's
    actions now: exact unless their number changed in the period), plus the skipped firings."""
    planned = -(-figures.decisions // max(actions_per_firing, 1))
    return planned + figures.triggered
