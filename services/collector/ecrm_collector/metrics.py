"""Every metric the collector exports, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("ecrm_collector_requests_total", "HTTP requests answered, by route and status.", ["route", "status"])
EVENTS_ACCEPTED = Counter("ecrm_collector_events_accepted_total", "Events acknowledged by Kafka.")
EVENTS_SUPPRESSED = Counter(
    "ecrm_collector_events_suppressed_total", "Events of erased identities, dropped unstored (the suppression list)."
)
EVENTS_REJECTED = Counter(
    "ecrm_collector_events_rejected_total", "Events rejected and sent to the dead-letter topic, by rule.", ["rule"]
)
PRODUCE_SECONDS = Histogram(
    "ecrm_collector_produce_seconds",
    "Time from producing a request's records to the broker's acknowledgment of all of them.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PRODUCER_QUEUE = Gauge("ecrm_collector_producer_queue_records", "Records waiting for the broker's acknowledgment.")
RATE_LIMITED = Counter(
    "ecrm_collector_rate_limited_total", "Requests refused with 429 because a source was over its rate."
)
PRODUCE_FAILURES = Counter(
    "ecrm_collector_produce_failures_total",
    "Requests answered 503 because Kafka did not acknowledge their records in time (or refused them).",
)
