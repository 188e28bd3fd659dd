"""Every metric the interaction service exports, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DECISIONS = Counter(
    "ecrm_interaction_decisions_total",
    "Rule decisions, by outcome (planned, skipped, sent, done, suppressed, deferred, cancelled, failed, "
    "retrying) and reason.",
    ["outcome", "reason"],
)
SEND_SECONDS = Histogram("ecrm_interaction_send_seconds", "Time to hand one email to the SMTP server.")
QUEUE = Gauge("ecrm_interaction_queued_actions", "Actions waiting to be carried out, by status.", ["status"])
CHANGES_CONSUMED = Counter("ecrm_interaction_profile_changes_total", "Profile changes consumed.")
SEGMENT_CHANGES_CONSUMED = Counter("ecrm_interaction_segment_changes_total", "Segment membership changes consumed.")
SUPPRESSED = Counter(
    "ecrm_interaction_suppressed_changes_total", "Profile and segment changes of erased customers, dropped."
)
DEAD_LETTERS = Counter("ecrm_interaction_dead_letters_total", "Consumed records sent to the dead-letter topic.")
ESCALATIONS = Counter("ecrm_interaction_case_escalations_total", "Cases escalated past their SLA.")
ASSIGNED_PARTITIONS = Gauge(
    "ecrm_interaction_assigned_partitions", "Partitions this replica's consumer holds, by topic.", ["topic"]
)
DECISION_SECONDS = Histogram(
    "ecrm_interaction_decision_seconds",
    "From the aggregator emitting a profile change to its decisions being committed.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
