"""The aggregator's settings: one class, read once from the environment at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from ecrm_schemas.settings import KafkaSettings, ServiceSettings


class AggregatorSettings(ServiceSettings, KafkaSettings):
    """Environment variables: the field names in upper case."""

    clickhouse_url: str = "http://127.0.0.1:8123"
    """A ClickHouse HTTP(S) endpoint, or ``chdb:///path`` for the in-process engine."""
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = Field(default="ecrm", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_cluster: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """A ClickHouse cluster name: migrations then create Replicated and Distributed tables ON CLUSTER."""
    aggregator_events_retention_days: int = Field(default=0, ge=0)
    """How long the events table keeps an event (by its timestamp); 0 keeps events forever."""
    aggregator_engine: Literal["kafka", "faust"] = "kafka"
    """How the events topic is read: ``kafka``, batches from a confluent-kafka consumer (the
    default), or ``faust``, a faust-streaming agent (about 10k events/s per process at most)."""
    aggregator_group_id: str = "ecrm-aggregator"
    """The Kafka consumer group (faust app id); workers with the same id share partitions."""
    aggregator_batch_size: int = Field(default=20_000, gt=0)
    aggregator_batch_wait_s: float = Field(default=0.5, gt=0)
    """A batch is written when it is full or when this much time has passed since its first event."""
    aggregator_profile_cache_size: int = Field(default=20_000, ge=0)
    """How many profiles a worker keeps in memory between batches (the least recently used
    go first; each is checked against its stored version before use; 0 turns it off)."""
    aggregator_timer_interval_s: float = Field(default=60.0, gt=0)
    """How often the timer looks for time-based changes: stale computed traits, segment windows."""
    aggregator_traits_refresh_s: float = Field(default=3600.0, gt=0)
    """Computed traits older than this are recomputed by the timer (a customer becomes "at risk"
    because nothing happened)."""
    aggregator_similarity_refresh_s: float = Field(default=600.0, gt=0)
    """How often item-to-item similarities (``item_similarity``, read by the interaction
    service's recommendations) are recomputed in ClickHouse."""
    aggregator_metrics_host: str = "127.0.0.1"
    aggregator_metrics_port: int = 9101
    """Where Prometheus scrapes the aggregator (``/metrics``); containers use host 0.0.0.0."""
    aggregator_max_invalid_ratio: float = Field(default=0.5, ge=0, le=1)
    """Above this share of invalid events in a batch of at least 100, the worker stops instead of
    pouring the topic into the dead-letter queue."""

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.clickhouse_url.startswith("chdb://"):
            problems.append("CLICKHOUSE_URL points at the in-process chdb engine")
        return problems
