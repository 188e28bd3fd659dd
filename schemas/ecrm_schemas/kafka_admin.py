"""Create the registry's topics on a broker (dev stack, tests, and the deploy job)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ecrm_schemas.topics import ALL_TOPICS, Topic


def ensure_topics(
    client_config: dict[str, Any],
    topics: Iterable[Topic] = ALL_TOPICS,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Existing topics are left as they are (partitions are never changed here).
    """
    admin = AdminClient(client_config)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [t for t in topics if t.name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t.name, num_partitions=t.partitions, replication_factor=replication_factor, config=t.topic_config()
            )
            for t in wanted
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
