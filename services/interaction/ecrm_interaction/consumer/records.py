"""The one shape a consumed Kafka record has inside the interaction service.

The consumer runtime (whatever client library reads the broker) hands batches of these to the
intake; the intake and the dead-letter step read nothing else of the client's message type.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name``, if any."""
        return next((value for key, value in self.headers if key == name), None)
