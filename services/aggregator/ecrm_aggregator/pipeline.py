"""The aggregator's chain of steps, in one place.

    records ─▶ decode_records ─▶ event rows ─▶ [insert events]
                     │
                     └▶ group by customer ─▶ [load profiles] ─▶ fold ─▶ profile rows ─▶ [insert profiles]
                                                                   └▶ ProfileChanged ─▶ [produce]
    dead letters ─▶ [produce to the DLQ]            then ─▶ [commit offsets]

Bracketed steps are I/O done by the worker (:mod:`ecrm_aggregator.worker`); everything
here is pure and unit-tested without a broker or ClickHouse.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecrm_aggregator.decode import Decoded, PositionedEvent, SourceRecord, decode_records
from ecrm_aggregator.profile_folding import customer_id_of, fold
from ecrm_aggregator.rows import event_row, profile_row
from ecrm_schemas.events import TrackEvent
from ecrm_schemas.profile import CustomerProfile, ProfileChanged, TriggerEvent


@dataclass(slots=True)
class BatchPlan:
    """What a batch of records becomes before profiles are read."""

    decoded: Decoded
    event_rows: list[list[Any]]
    by_customer: dict[str, list[PositionedEvent]]
    dedup_token: str
    """Deterministic for the same records, so a redelivered batch is stored once."""


@dataclass(slots=True)
class FoldResult:
    profile_rows: list[list[Any]] = field(default_factory=list)
    changes: list[ProfileChanged] = field(default_factory=list)


def dedup_token(records: list[SourceRecord]) -> str:
    spans: dict[int, tuple[int, int]] = {}
    for r in records:
        low, high = spans.get(r.partition, (r.offset, r.offset))
        spans[r.partition] = (min(low, r.offset), max(high, r.offset))
    text = ",".join(f"{p}:{lo}-{hi}" for p, (lo, hi) in sorted(spans.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def plan_batch(records: list[SourceRecord]) -> BatchPlan:
    decoded = decode_records(records)
    by_customer: dict[str, list[PositionedEvent]] = defaultdict(list)
    for positioned in decoded.events:
        by_customer[customer_id_of(positioned)].append(positioned)
    for events in by_customer.values():
        events.sort(key=lambda p: (p.partition, p.offset))
    return BatchPlan(
        decoded=decoded,
        event_rows=[event_row(p) for p in decoded.events],
        by_customer=dict(by_customer),
        dedup_token=dedup_token(records),
    )


def trigger_of(positioned: PositionedEvent) -> TriggerEvent:
    event = positioned.event
    return TriggerEvent(
        message_id=event.messageId,
        type=event.type,
        event=event.event if isinstance(event, TrackEvent) else None,
        timestamp=event.timestamp,
        properties=getattr(event, "properties", None) or getattr(event, "traits", None) or {},
    )


def fold_batch(plan: BatchPlan, current: dict[str, CustomerProfile], now: datetime) -> FoldResult:
    """Fold each customer's events into their current profile; one change event per customer."""
    result = FoldResult()
    for customer_id, events in plan.by_customer.items():
        before = current.get(customer_id)
        folded = fold(before, events, now)
        if folded is None and before is not None:
            # A redelivery of events already folded (the worker died after writing the
            # profile): no new version, but the change is emitted again, because it may never
            # have reached Kafka. Consumers deduplicate by trigger message id.
            result.changes.append(
                ProfileChanged(customer_id=customer_id, profile=before, changed=[],
                               triggers=[trigger_of(p) for p in events], emitted_at=now)
            )  # fmt: skip
            continue
        assert folded is not None
        result.profile_rows.append(profile_row(folded.profile))
        result.changes.append(
            ProfileChanged(
                customer_id=customer_id,
                profile=folded.profile,
                changed=folded.changed,
                triggers=[trigger_of(p) for p in folded.folded],
                emitted_at=now,
            )
        )
    return result
