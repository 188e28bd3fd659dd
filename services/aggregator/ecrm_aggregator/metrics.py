"""Every metric the aggregator exports, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("ecrm_aggregator_events_consumed_total", "Records read from the events topic.")
EVENTS_SUPPRESSED = Counter(
    "ecrm_aggregator_events_suppressed_total", "Events of erased identities, dropped unstored (the suppression list)."
)
EVENTS_WRITTEN = Counter("ecrm_aggregator_events_written_total", "Valid events written to ClickHouse.")
DEAD_LETTERS = Counter(
    "ecrm_aggregator_dead_letters_total", "Records sent to the dead-letter topic, by reason.", ["reason"]
)
EVENTS_FORWARDED = Counter(
    "ecrm_aggregator_events_forwarded_total",
    "Events of merged anonymous ids forwarded to their user's partition (ecrm.events.stitched).",
)
PROFILE_CHANGES = Counter("ecrm_aggregator_profile_changes_total", "Profile-changed events emitted.")
BATCH_RECORDS = Histogram(
    "ecrm_aggregator_batch_records", "Records per processed batch.", buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000)
)
INSERT_SECONDS = Histogram(
    "ecrm_aggregator_clickhouse_insert_seconds", "ClickHouse insert latency, by table.", ["table"]
)
BATCH_SECONDS = Histogram("ecrm_aggregator_batch_seconds", "Time to process one batch, read to produced.")
END_TO_END_SECONDS = Histogram(
    "ecrm_aggregator_event_to_written_seconds",
    "From an event's receipt at the collector to its row written in ClickHouse.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
WRITE_RETRIES = Counter("ecrm_aggregator_write_retries_total", "Batch writes retried after a failure.")
IDENTITY_DECISIONS = Counter(
    "ecrm_aggregator_identity_decisions_total", "Identity links made or refused by the merge guard.", ["decision"]
)
SEGMENT_CHANGES = Counter(
    "ecrm_aggregator_segment_changes_total", "Customers entering and leaving segments, by type.", ["type"]
)
SEGMENT_DEFINITIONS_REJECTED = Counter(
    "ecrm_aggregator_segment_definitions_rejected_total",
    "Segment definitions refused and dead-lettered (ecrm.segment-definitions.dlq), by the first failed rule.",
    ["rule"],
)
TRAITS_REVIEWED = Counter(
    "ecrm_aggregator_traits_reviewed_total", "Profiles whose computed traits the timer recomputed."
)
CONSUMER_LAG = Gauge(
    "ecrm_aggregator_consumer_lag", "Events not yet processed, per partition of the events topic.", ["partition"]
)
PROFILE_CACHE = Counter(
    "ecrm_aggregator_profile_cache_total",
    "Profiles a batch needed: taken from the worker's cache (hit, version checked) or read from ClickHouse (miss).",
    ["result"],
)
