"""The customer views: the 360 view for sales and support, the loyalty view, and what a web page
needs to greet the customer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy.orm import Session

from ecrm_interaction.api.services import score_explanations
from ecrm_interaction.api.views import ActionView, CaseView, SuppressionView
from ecrm_interaction.engine.loyalty import next_tier, tier_of
from ecrm_interaction.storage import actions, cases, customers, loyalty, rules, suppressions
from ecrm_interaction.storage.store import aware

Recommender = Callable[[str, int], list[dict[str, Any]]]
RecentEvents = Callable[[str, int], list[dict[str, Any]]]


def loyalty_view(session: Session, customer_id: str) -> dict[str, Any]:
    """Points, tier, the next tier, the latest ledger entries and the rewards of the customer."""
    program = rules.loyalty_program(session)
    balance, entries, rewards = loyalty.ledger(session, customer_id)
    return {
        "points": balance,
        "tier": tier_of(balance, program),
        "next": next_tier(balance, program),
        "history": [{"points": e.points, "reason": e.reason, "rule_id": e.rule_id, "at": aware(e.at)} for e in entries],
        "rewards": [{"reward": r.reward, "code": r.code, "issued_at": aware(r.issued_at)} for r in rewards],
    }


def customer_view(
    session: Session, customer_id: str, recent_events: RecentEvents | None, events: int = 20
) -> dict[str, Any] | None:
    """Identity, traits and scores, segments, the latest ``events`` events (``recent_events``:
    ClickHouse; left out without), messages sent and suppressed, cases and loyalty; None when
    nothing is known of the customer."""
    row = customers.customer(session, customer_id)
    profile = orjson.loads(row.profile) if row is not None and row.profile else None
    planned = actions.recent(session, customer_id=customer_id, limit=200)
    opened = cases.cases(session, customer_id=customer_id)
    if row is None and not planned and not opened:
        return None
    messages = [ActionView.of(a).model_dump(mode="json") for a in planned if a.kind == "email"]
    suppression = suppressions.of_address(session, row.email if row else None)
    consents = customers.consents(session, customer_id)
    view: dict[str, Any] = {
        "customer_id": customer_id,
        "identity": {k: (profile or {}).get(k) for k in ("user_id", "anonymous_id", "email", "merged_into")},
        "profile": profile,
        "scores": (profile or {}).get("computed"),
        "score_explanations": score_explanations.explain(profile),
        "segments": [
            {"segment_id": s.segment_id, "name": s.segment_name, "since": aware(s.since)}
            for s in customers.segments(session, customer_id)
        ],
        "contact": {
            "email": row.email if row else None,
            "timezone": row.timezone if row else None,
            "unsubscribed_at": aware(row.unsubscribed_at) if row else None,
            "suppressed": suppression.reason if suppression else None,
            "suppression": (
                SuppressionView.model_validate(suppression, from_attributes=True).model_dump(mode="json")
                if suppression
                else None
            ),
            "consent": {
                c.channel: {"granted": c.granted, "purpose": c.purpose, "source": c.source, "at": aware(c.updated_at)}
                for c in consents
                if c.purpose == "marketing"
            },
            "consents": [
                {
                    "channel": c.channel,
                    "purpose": c.purpose,
                    "granted": c.granted,
                    "source": c.source,
                    "at": aware(c.updated_at),
                }
                for c in consents
            ],
        },
        "messages": {
            "sent": [m for m in messages if m["status"] == "sent"],
            "suppressed": [m for m in messages if m["status"] in ("suppressed", "cancelled")],
            "pending": [m for m in messages if m["status"] in ("pending", "waiting", "deferred")],
            "failed": [m for m in messages if m["status"] == "failed"],
        },
        "actions": [ActionView.of(a).model_dump(mode="json") for a in planned if a.kind != "email"],
        "cases": [c.model_dump(mode="json") for c in CaseView.many(session, opened)],
        "loyalty": loyalty_view(session, customer_id),
    }
    if recent_events is not None:
        try:
            view["recent_events"] = recent_events(customer_id, events)
        except Exception as exc:  # ClickHouse away: the rest of the view still answers
            view["recent_events"] = {"error": type(exc).__name__}
    return view


def personalization(session: Session, customer_id: str, recommender: Recommender | None) -> dict[str, Any]:
    """Highlights (first name, lifecycle stage, RFM segment, loyalty), segments and recommendations."""
    row = customers.customer(session, customer_id)
    profile = orjson.loads(row.profile) if row is not None and row.profile else {}
    computed = profile.get("computed") or {}
    traits = profile.get("traits") or {}
    points = loyalty_view(session, customer_id)
    items = recommender(customer_id, 6) if recommender is not None else []
    return {
        "customer_id": customer_id,
        "highlights": {
            "first_name": traits.get("firstName") or traits.get("first_name"),
            "lifecycle_stage": computed.get("lifecycle_stage"),
            "rfm_segment": computed.get("rfm_segment"),
            "loyalty_tier": points["tier"],
            "loyalty_points": points["points"],
            "orders": profile.get("orders", 0),
        },
        "segments": [s.segment_id for s in customers.segments(session, customer_id)],
        "recommendations": items,
    }
