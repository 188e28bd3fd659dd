"""The suppression list: identities whose data was erased, so that nothing about them is stored again.

An erasure (``ecrm-interaction privacy erase``) publishes one record per identity (user id,
anonymous id) of the customer to the compacted suppression topic. The collector drops later
events for those identities before they reach Kafka; the aggregator drops events that were
already on their way; the interaction service drops profile changes still in flight.

The list holds digests, never the identities themselves: what was erased stays erased, and
the suppression list is no copy of it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field, ValidationError

from ecrm_schemas.topic_follower import TopicFollower
from ecrm_schemas.topics import SUPPRESSIONS

log = structlog.get_logger()
_NAMESPACE = b"ecrm-suppression:v1:"


def identity_digest(identity: str) -> str:
    """The suppression key of a user id or anonymous id (SHA-256, hex)."""
    return hashlib.sha256(_NAMESPACE + identity.encode()).hexdigest()


class Suppression(BaseModel):
    """One record of the suppression topic (keyed by ``identity_digest``)."""

    identity_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    reason: Literal["erasure"] = "erasure"
    suppressed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class SuppressionList:
    """The digests of suppressed identities; safe to share between threads."""

    def __init__(self, digests: Iterable[str] = ()) -> None:
        self._digests: set[str] = set(digests)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, digest: str) -> None:
        with self._lock:
            self._digests.add(digest)

    def suppress(self, identities: Iterable[str]) -> None:
        for identity in identities:
            self.add(identity_digest(identity))

    def matches(self, *identities: str | None) -> bool:
        """Whether any of the (non-empty) identities is suppressed."""
        if not self._digests:
            return False
        return any(identity and identity_digest(identity) in self._digests for identity in identities)

    def matches_raw(self, raw: Any) -> bool:
        """Whether an event as received (a dict, not yet validated) names a suppressed identity."""
        if not self._digests or not isinstance(raw, dict):
            return False
        ids = [raw.get(name) for name in ("userId", "anonymousId", "previousId", "user_id", "anonymous_id")]
        return self.matches(*(i for i in ids if isinstance(i, str)))


class SuppressionFollower(TopicFollower):
    """Follows the suppression topic into a :class:`SuppressionList`."""

    def __init__(self, kafka_config: dict[str, Any], suppressions: SuppressionList) -> None:
        super().__init__(kafka_config, SUPPRESSIONS, self.apply_record)
        self.suppressions = suppressions

    def apply_record(self, key: bytes | None, value: bytes | None) -> None:
        try:
            record = Suppression.model_validate_json(value or b"")
        except ValidationError as exc:
            log.warning("suppression_record_invalid", errors=exc.error_count())
            return
        self.suppressions.add(record.identity_digest)


def follow_suppressions(kafka_config: dict[str, Any]) -> tuple[SuppressionList, SuppressionFollower]:
    """A suppression list kept up to date by a started follower."""
    suppressions = SuppressionList()
    follower = SuppressionFollower(kafka_config, suppressions)
    follower.start()
    return suppressions, follower
