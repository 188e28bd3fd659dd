"""History imports (backfill): events that build profiles and traits without triggering rules.

The one definition of the mark, used by the three services:

* the collector's ``POST /v1/import`` (server sources only) sets ``context.ecrm_backfill: true``
  on every event it accepts, and every other route removes that key, so a web page cannot
  mark its own events;
* the aggregator folds marked events like any other (events, profiles, traits, segments) and
  carries the mark on: ``TriggerEvent.backfill`` in ``ecrm.profile-changes`` and
  ``SegmentMembershipChanged.backfill`` for segment changes imported events took part in;
* the interaction service fires no rule on them, nor on trait crossings and segment changes
  imported events took part in (a live event folded in the same batch still fires its own
  event rules); contact state, such as an imported unsubscribe or consent, is still recorded.

The mark travels inside the event, so it survives the stitched topic, dead-letter replay and
a re-read of the events table.
"""

from __future__ import annotations

from typing import Any

BACKFILL_CONTEXT_KEY = "ecrm_backfill"


def marked_backfill(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw event with the backfill mark in its context."""
    context = raw.get("context")
    return {**raw, "context": {**(context if isinstance(context, dict) else {}), BACKFILL_CONTEXT_KEY: True}}


def without_backfill(raw: dict[str, Any]) -> dict[str, Any]:
    """A raw event without the backfill mark (what every route but the import does)."""
    context = raw.get("context")
    if not isinstance(context, dict) or BACKFILL_CONTEXT_KEY not in context:
        return raw
    return {**raw, "context": {k: v for k, v in context.items() if k != BACKFILL_CONTEXT_KEY}}


def is_backfill(event: Any) -> bool:
    """Whether a validated event (any :mod:`ecrm_schemas.events` model) carries the mark."""
    extra = getattr(getattr(event, "context", None), "model_extra", None) or {}
    return extra.get(BACKFILL_CONTEXT_KEY) is True
