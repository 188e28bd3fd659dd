"""Create the registry's topics on a broker (dev stack, tests, the deploy job), and describe
them as Strimzi ``KafkaTopic`` resources for Kubernetes."""

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


def strimzi_topics(cluster: str, replicas: int = 3, topics: Iterable[Topic] = ALL_TOPICS) -> list[dict[str, Any]]:
    """The registry as Strimzi ``KafkaTopic`` resources for the Kafka cluster named ``cluster``."""
    resources = []
    for topic in topics:
        config: dict[str, Any] = dict(topic.topic_config())
        if replicas > 1:
            config.setdefault("min.insync.replicas", str(replicas - 1))
        resources.append({
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {
                "name": topic.name.replace(".", "-"),
                "labels": {"strimzi.io/cluster": cluster, "app.kubernetes.io/name": "ecrm",
                           "app.kubernetes.io/part-of": "ecrm", "app.kubernetes.io/component": "kafka-topic"},
                "annotations": {"ecrm.io/description": topic.description},
            },
            "spec": {"topicName": topic.name, "partitions": topic.partitions, "replicas": replicas, "config": config},
        })  # fmt: skip
    return resources
