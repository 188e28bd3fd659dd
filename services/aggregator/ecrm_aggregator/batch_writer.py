"""Process one batch end to end: the pipeline's pure steps around ClickHouse and Kafka I/O.

Called by the faust agent; returns only when everything the batch produced is stored and
acknowledged, so the agent may then let faust commit the batch's offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_exponential

from ecrm_aggregator import metrics
from ecrm_aggregator.clickhouse_store import ClickHouseStore
from ecrm_aggregator.decode import SourceRecord, forward_headers
from ecrm_aggregator.identity import decide
from ecrm_aggregator.pipeline import (
    BatchPlan,
    FoldResult,
    fold_batch,
    group_by_customer,
    merges_to_apply,
    new_events,
    plan_batch,
    review_traits,
    to_look_up,
)
from ecrm_aggregator.profile_cache import ProfileCache
from ecrm_aggregator.profile_folding import customer_id_of
from ecrm_aggregator.profile_state import ProfileState
from ecrm_aggregator.segmentation import SegmentRegistry, Trigger, membership_changes
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.backfill import is_backfill
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.events import encode_event
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.segment_sql import membership_query
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import EVENTS, EVENTS_STITCHED, PROFILE_CHANGES, SEGMENT_MEMBERSHIP

log = structlog.get_logger()
T = TypeVar("T")
PROFILE_CACHE_SIZE: int = AggregatorSettings.model_fields["aggregator_profile_cache_size"].default


class TooManyInvalid(RuntimeError):
    """Most of a batch is invalid: likely a broken producer; stop instead of draining into the DLQ."""


class BatchWriter:
    """The aggregator's I/O around the pure steps. ``producer`` None: ClickHouse only (tools, tests)."""

    def __init__(
        self,
        store: ClickHouseStore,
        producer: ReliableProducer | None,
        max_invalid_ratio: float,
        segments: SegmentRegistry | None = None,
        traits_refresh_s: float = 3600.0,
        suppressions: SuppressionList | None = None,
        profile_cache_size: int = PROFILE_CACHE_SIZE,
    ) -> None:
        self.store, self.producer, self.max_invalid_ratio = store, producer, max_invalid_ratio
        self.profiles = ProfileCache(profile_cache_size)
        self.suppressions = suppressions
        self.segments = segments or SegmentRegistry()
        self.traits_refresh_s = traits_refresh_s
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        """Batches and timer ticks take turns: both read, change and write profiles."""
        self._next_offsets: dict[int, int] = {}
        """Per partition, the offset after the last record this writer processed and settled:
        a batch that starts there follows on from our own writes and needs no look-up."""

    def partitions_revoked(self, partitions: list[int]) -> None:
        """Another worker may write these partitions now: look their events up again when they come back."""
        with self._lock:
            for partition in partitions:
                self._next_offsets.pop(partition, None)
            # A batch of theirs may come again: start from what ClickHouse holds.
            self.profiles.clear()

    def stop(self) -> None:
        """Give up retrying: the batch in progress fails (and is not acked) so the worker can stop."""
        self._stopping.set()

    def _back_off(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # a stop cuts the back-off short

    def process(self, records: list[SourceRecord]) -> None:
        """Write, fold and emit one batch, retrying I/O failures until they succeed."""
        started = time.perf_counter()
        plan = plan_batch(records, self.suppressions)
        metrics.EVENTS_SUPPRESSED.inc(plan.decoded.suppressed)
        invalid = len(plan.decoded.dead_letters)
        if len(records) >= 100 and invalid / len(records) > self.max_invalid_ratio:
            raise TooManyInvalid(f"{invalid} of {len(records)} records in a batch are invalid")

        with self._lock:
            result = self.store_batch(plan)
            self._retry(self._produce, plan.decoded.dead_letters, result)
            self._retry(self.store.insert_membership, result.membership, plan.dedup_token)

        metrics.EVENTS_CONSUMED.inc(len(records))
        metrics.BATCH_RECORDS.observe(len(records))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def store_batch(self, plan: BatchPlan) -> FoldResult:
        """Everything a batch changes in ClickHouse: events, identity links, profiles."""
        # Each stage is retried on its own so a retry never redoes (and never loses) an earlier
        # stage's result: the fold must run against the profiles as they were before this batch.
        now = datetime.now(UTC)
        ids = plan.ids_to_look_up()
        links = self._retry(self.store.load_links, ids)
        linked = {link.anonymous_id for link in links.values()} | {link.user_id for link in links.values()}
        current = self._retry(self.current_profiles, sorted(set(ids) | linked))
        known_users = plan.known_users | {c for c, p in current.items() if p.user_id == c}
        identity = decide(plan.link_requests, links, known_users, now)

        unsettled = {p for p, (first, _) in plan.spans.items() if self._next_offsets.get(p) != first}
        keys, message_ids = to_look_up(plan, unsettled, identity, current)
        stored = self._retry(self.store.stored_positions, keys, message_ids) if message_ids else {}
        fresh = new_events(plan, identity, current, stored, unsettled, forwarding=self.producer is not None)
        self._retry(self.store.insert_events, fresh.rows, dedup_token=plan.dedup_token, table="events")
        for positioned in plan.decoded.events:
            metrics.END_TO_END_SECONDS.observe(max(0.0, (now - positioned.event.receivedAt).total_seconds()))
        metrics.EVENTS_WRITTEN.inc(len(fresh.rows))
        if identity.records:
            self._retry(self.store.insert_identity, identity.new_links, identity.records, plan.dedup_token)
            metrics.IDENTITY_DECISIONS.labels("merged").inc(len(identity.new_links))
            metrics.IDENTITY_DECISIONS.labels("refused").inc(len(identity.records) - len(identity.new_links))
            for refused in (r for r in identity.records if r.action == "refused"):
                # Pseudonymous ids and the guard's rule only: the reason in words is in identity_merges.
                log.info("identity_merge_refused", anonymous_id=refused.anonymous_id, user_id=refused.user_id,
                         message_id=refused.message_id, rule=refused.rule)  # fmt: skip

        by_customer = group_by_customer(fresh.to_fold, identity)
        merged = merges_to_apply(list(by_customer), identity, current)
        groups = {customer: [customer, *anonymous] for customer, anonymous in merged.items()}
        histories = self._retry(self.store.load_histories, groups) if groups else {}
        result = fold_batch(by_customer, current, now, histories, merged)
        result.forwards = [
            (identity.resolve(customer_id_of(p)), identity.home_partition(customer_id_of(p), p.partition), p)
            for p in fresh.forward
        ]
        self._retry(self.store.insert_profiles, result.profile_rows, dedup_token=plan.dedup_token, table="profiles")
        self.profiles.put(result.profiles)

        definitions = self.segments.current()
        if definitions and by_customer:
            customers = sorted(set(by_customer) | {a for anonymous in merged.values() for a in anonymous})
            stitched = {a: c for c in by_customer for a in identity.anonymous_ids_of(c)}
            query = membership_query(self.store.database, definitions, customers, stitched)
            evaluated = self._retry(self.store.segment_members, query, now)
            stored_membership = self._retry(self.store.stored_membership, customers)
            triggers = {c: [p.event.messageId for p in events] for c, events in by_customer.items()}
            versions = {change.customer_id: change.profile.version for change in result.changes}
            imported = {c for c, events in by_customer.items() if any(is_backfill(p.event) for p in events)}
            result.membership = membership_changes(
                definitions, evaluated, stored_membership, now, "event", plan.dedup_token, triggers,
                profile_versions=versions, backfill=imported,
            )  # fmt: skip
        for partition, (_, last) in plan.spans.items():
            if partition not in unsettled or partition in fresh.settled:
                self._next_offsets[partition] = last + 1
            else:
                self._next_offsets.pop(partition, None)
        return result

    def current_profiles(self, customer_ids: list[str]) -> dict[str, ProfileState]:
        """The latest profile of each of ``customer_ids`` that has one: from the cache where
        its version is the stored one, the rest read from ClickHouse (and cached)."""
        if not self.profiles.capacity:  # no cache: nothing to check the versions against
            return self.store.load_profiles(customer_ids)
        usable, to_read = self.profiles.split(self.store.profile_versions(customer_ids), customer_ids)
        metrics.PROFILE_CACHE.labels("hit").inc(len(usable))
        metrics.PROFILE_CACHE.labels("miss").inc(len(to_read))
        if to_read:
            read = self.store.load_profiles(to_read)
            self.profiles.put(read.values())
            usable |= read
        return usable

    def tick(self, partitions: list[int], now: datetime | None = None) -> None:
        """The timer: refresh stale computed traits, then re-evaluate every segment, for the
        customers of ``partitions`` (the worker's own, so two workers never do the same)."""
        if not partitions:
            return
        now = now or datetime.now(UTC)
        with self._lock:
            reviewed = 0
            while not self._stopping.is_set():
                stale_before = now - timedelta(seconds=self.traits_refresh_s)
                stale = self._retry(self.store.profiles_to_review, partitions, stale_before, 5000)
                if not stale:
                    break
                result = review_traits(stale, now)
                token = f"review-{now.isoformat()}-{reviewed}"
                self._retry(self.store.insert_profiles, result.profile_rows, dedup_token=token, table="profiles")
                self.profiles.put(result.profiles)
                self._retry(self._produce, [], result)
                reviewed += len(stale)
            metrics.TRAITS_REVIEWED.inc(reviewed)
            self._tick_segments(partitions, now)

    def _tick_segments(self, partitions: list[int], now: datetime) -> None:
        changed = self.segments.take_changed()
        definitions = self.segments.current()
        if changed:
            kept = [d for d in definitions if d.id in changed]
            self._retry(self.store.record_definitions, kept, sorted(changed - {d.id for d in kept}))
        stored_membership = self._retry(self.store.stored_membership, None, partitions)
        evaluated: dict[str, set[str]] = {}
        if definitions:
            query = membership_query(self.store.database, definitions, partitions=partitions)
            evaluated = self._retry(self.store.segment_members, query, now)
        # Only customers in scope and stored members count: a customer outside every segment
        # who is not stored as a member of any needs nothing.
        evaluated = {c: s for c, s in evaluated.items() if s or c in stored_membership}
        cause = f"tick-{now.isoformat()}-{','.join(map(str, partitions))}"
        trigger: Trigger = "definition" if changed else "timer"
        update = membership_changes(definitions, evaluated, stored_membership, now, trigger, cause)
        if update.events:
            self._retry(self._produce, [], FoldResult(membership=update))
            self._retry(self.store.insert_membership, update, cause)

    def _retry(self, func: Callable[..., T], *args: Any, table: str | None = None, **kwargs: Any) -> T:
        """Call ``func`` until it succeeds or the worker stops, backing off; offsets stay uncommitted meanwhile."""
        for attempt in Retrying(
            stop=lambda _state: self._stopping.is_set(),
            wait=wait_exponential(multiplier=0.2, max=10),
            sleep=self._back_off,
            retry=retry_if_exception_type(Exception),
            before_sleep=before_sleep_log(logging.getLogger("ecrm.aggregator"), logging.WARNING),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    metrics.WRITE_RETRIES.inc()
                t0 = time.perf_counter()
                value = func(*args, **kwargs)
                if table is not None:
                    metrics.INSERT_SECONDS.labels(table).observe(time.perf_counter() - t0)
                return value
        raise AssertionError("unreachable: Retrying with reraise either returns or raises")

    def _produce(self, dead_letters: list[DeadLetter], result: FoldResult) -> None:
        """Dead letters, profile changes and segment changes, all acknowledged before returning."""
        if self.producer is None:
            return
        assert EVENTS.dead_letter is not None
        for letter in dead_letters:
            self.producer.produce(EVENTS.dead_letter, letter.model_dump_json().encode())
        for change in result.changes:
            self.producer.produce(PROFILE_CHANGES.name, change.encode(), key=change.customer_id.encode())
        for segment_change in result.membership.events:
            self.producer.produce(
                SEGMENT_MEMBERSHIP.name, segment_change.encode(), key=segment_change.customer_id.encode()
            )
        for user_id, partition, positioned in result.forwards:
            headers = forward_headers(positioned)
            value = encode_event(positioned.event)
            self.producer.produce(
                EVENTS_STITCHED.name, value, key=user_id.encode(), partition=partition, headers=headers
            )
        self.producer.flush_or_raise(30)
        for letter in dead_letters:
            metrics.DEAD_LETTERS.labels(letter.reason).inc()
        metrics.PROFILE_CHANGES.inc(len(result.changes))
        metrics.EVENTS_FORWARDED.inc(len(result.forwards))
        for segment_change in result.membership.events:
            metrics.SEGMENT_CHANGES.labels(segment_change.type).inc()
        if dead_letters:
            log.warning("dead_lettered", records=len(dead_letters))
