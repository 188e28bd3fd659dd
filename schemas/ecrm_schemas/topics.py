"""The topic registry: the only place a Kafka topic name is written.

Every topic declares its partitions, key, retention, the models of its values, who
produces and consumes it, and its dead-letter topic. Services, the dev stack, the test
fixtures and the deployment manifests all read this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Topic:
    """One Kafka topic and its contract."""

    name: str
    description: str
    key: str
    """What the message key is (all messages of one key land on one partition, in order)."""
    value: str
    """The dotted path of the pydantic model (or union) that every value validates as."""
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    partitions: int = 3
    retention_ms: int = 7 * DAY_MS
    cleanup_policy: Literal["delete", "compact"] = "delete"
    dead_letter: str | None = None
    """The topic where consumers put values they cannot process, with the reason."""
    schema_version: int = 1
    config: dict[str, str] = field(default_factory=dict)

    def topic_config(self) -> dict[str, str]:
        """The broker-side configuration to create this topic with."""
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            **self.config,
        }


EVENTS_DLQ = Topic(
    name="ecrm.events.dlq",
    description="Events that failed validation, with the reason, the raw payload and the source.",
    key="customer key when known, else none",
    value="ecrm_schemas.dead_letter.DeadLetter",
    producers=("collector", "aggregator"),
    consumers=("operators (inspection and replay)",),
    partitions=1,
    retention_ms=30 * DAY_MS,
)

EVENTS = Topic(
    name="ecrm.events",
    description="Every validated customer event: web, email, survey and back-end, Segment-shaped.",
    key="userId, else anonymousId",
    value="ecrm_schemas.events.Event",
    producers=("collector", "interaction"),
    consumers=("aggregator",),
    partitions=12,
    retention_ms=7 * DAY_MS,
    dead_letter=EVENTS_DLQ.name,
)

EVENTS_STITCHED = Topic(
    name="ecrm.events.stitched",
    description=(
        "Events sent with an anonymous id that is merged into a user whose own events arrive on another "
        "partition, forwarded by the aggregator to the same partition number as the user's, so that one "
        "worker folds each profile. Already stored: only folded. The header ecrm-origin holds the event's "
        "partition:offset on ecrm.events."
    ),
    key="the user id the event belongs to",
    value="ecrm_schemas.events.Event",
    producers=("aggregator",),
    consumers=("aggregator",),
    partitions=EVENTS.partitions,
    retention_ms=7 * DAY_MS,
)
ORIGIN_HEADER = "ecrm-origin"
"""On ecrm.events.stitched: ``<partition>:<offset>`` of the event on ecrm.events."""

PROFILE_CHANGES_DLQ = Topic(
    name="ecrm.profile-changes.dlq",
    description="Profile changes the interaction service could not process, with the reason.",
    key="customer id",
    value="ecrm_schemas.dead_letter.DeadLetter",
    producers=("interaction",),
    consumers=("operators (inspection and replay)",),
    partitions=1,
    retention_ms=30 * DAY_MS,
)

PROFILE_CHANGES = Topic(
    name="ecrm.profile-changes",
    description="A customer's profile after new events were folded in, with what changed and why.",
    key="customer id",
    value="ecrm_schemas.profile.ProfileChanged",
    producers=("aggregator",),
    consumers=("interaction",),
    partitions=3,
    retention_ms=3 * DAY_MS,
    dead_letter=PROFILE_CHANGES_DLQ.name,
)

SEGMENT_DEFINITIONS_DLQ = Topic(
    name="ecrm.segment-definitions.dlq",
    description=(
        "Segment definitions the aggregator refused (written to the definitions topic without the API's or the "
        "CLI's validation), with every field and rule that failed; reported again at each start while the "
        "definitions topic still holds them."
    ),
    key="segment id",
    value="ecrm_schemas.dead_letter.DeadLetter",
    producers=("aggregator",),
    consumers=("operators (inspection)",),
    partitions=1,
    retention_ms=30 * DAY_MS,
)

SEGMENT_DEFINITIONS = Topic(
    name="ecrm.segment-definitions",
    description="Marketers' segment definitions, the latest per segment id; an empty value deletes one.",
    key="segment id",
    value="ecrm_schemas.segments.SegmentDefinition",
    producers=("interaction", "operators (ecrm segments put)"),
    consumers=("aggregator",),
    partitions=1,
    retention_ms=-1,
    cleanup_policy="compact",
    dead_letter=SEGMENT_DEFINITIONS_DLQ.name,
)

SEGMENT_MEMBERSHIP = Topic(
    name="ecrm.segment-membership",
    description="A customer entered or left a segment, with the cause and the reason.",
    key="customer id",
    value="ecrm_schemas.segments.SegmentMembershipChanged",
    producers=("aggregator",),
    consumers=("interaction",),
    partitions=3,
    retention_ms=7 * DAY_MS,
)

SUPPRESSIONS = Topic(
    name="ecrm.suppressions",
    description=(
        "Identities whose data was erased (GDPR/CCPA): a SHA-256 digest per user or anonymous id, never the id. "
        "Every service follows it and drops what later arrives for them."
    ),
    key="the identity's digest",
    value="ecrm_schemas.suppressions.Suppression",
    producers=("interaction (privacy erase)",),
    consumers=("collector", "aggregator", "interaction"),
    partitions=1,
    retention_ms=-1,
    cleanup_policy="compact",
)

ALL_TOPICS: tuple[Topic, ...] = (
    EVENTS,
    EVENTS_DLQ,
    EVENTS_STITCHED,
    PROFILE_CHANGES,
    PROFILE_CHANGES_DLQ,
    SEGMENT_DEFINITIONS,
    SEGMENT_DEFINITIONS_DLQ,
    SEGMENT_MEMBERSHIP,
    SUPPRESSIONS,
)
TOPICS_BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
