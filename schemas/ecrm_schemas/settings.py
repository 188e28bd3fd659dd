"""Settings pieces shared by the services.

Each service defines ONE pydantic-settings class that inherits from these mixins, builds
it once at start-up and passes it down. Environment variables are the field names in
upper case (``KAFKA_BOOTSTRAP_SERVERS``, ``LOG_LEVEL``, ...).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]


class EnvSettings(BaseSettings):
    """The base of every settings piece, so that they all read the environment alike.

    pydantic merges the ``model_config`` of a class's bases in order, and a piece built on
    bare ``BaseSettings`` would bring back its defaults: every piece derives from this one.
    """

    # An empty variable (``CLICKHOUSE_CLUSTER=`` in an env file) means "not set".
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)


class ServiceSettings(EnvSettings):
    """What every service has: its environment and how it logs."""

    ecrm_env: Environment = "development"
    """``production`` refuses development defaults (see each service's checks)."""
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    @property
    def is_production(self) -> bool:
        return self.ecrm_env == "production"

    def production_problems(self) -> list[str]:
        """Settings that are unsafe in production; services extend this list."""
        return []

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> ServiceSettings:
        if self.is_production and (problems := self.production_problems()):
            raise ValueError("unsafe settings for ECRM_ENV=production: " + "; ".join(problems))
        return self


class KafkaSettings(EnvSettings):
    """How a service reaches Kafka; mixed into each service's settings class."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_session_timeout_ms: int = 45000
    """Consumer-group session timeout; the dev stack and tests use 6000 for fast joins."""

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka connection settings (confluent-kafka) for any client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return config

    def kafka_consumer_config(self, group_id: str | None = None, **tuning: Any) -> dict[str, Any]:
        """librdkafka settings of a consumer of this service (see :func:`consumer_config`)."""
        return consumer_config(self.kafka_client_config(), group_id, self.kafka_session_timeout_ms, **tuning)


FOLLOWER_GROUP = "unused"
"""The group id of consumers that assign partitions themselves (librdkafka wants one; nothing joins it)."""


def consumer_config(
    client_config: dict[str, Any], group_id: str | None = None, session_timeout_ms: int = 45000, **tuning: Any
) -> dict[str, Any]:
    """The one place a Kafka consumer's configuration is assembled (confluent-kafka; faust derives its own
    from it): offsets committed by the service only after processing, never automatically.

    With ``group_id`` the consumer joins that group with the range assignor, which gives a member the same
    partition numbers of every topic it reads: the aggregator's events and stitched events, the
    interaction service's profile and segment changes, all keyed by customer, stay co-partitioned.
    Heartbeats go every tenth of the session timeout: a member learns of a rebalance within a heartbeat,
    and one that hears of it after the group formed without it is left out of that generation, the
    other members sharing all its partitions until it joins again (librdkafka's default heartbeat of
    3 s with the 6 s session timeout of the tests left a member out often: see
    ``tests/test_scale_out.py``). Without ``group_id``: a follower that assigns partitions itself.
    ``tuning`` adds or overrides librdkafka keys (``fetch.wait.max.ms``...).
    """
    config: dict[str, Any] = {
        **client_config,
        "group.id": group_id or FOLLOWER_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "logger": logging.getLogger("ecrm.kafka"),
    }
    if group_id is not None:
        config |= {
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(100, min(3000, session_timeout_ms // 10)),
            "partition.assignment.strategy": "range",
        }
    return config | tuning


DEV_TRACKING_SECRET = "ecrm_dev_tracking_secret"


class TrackingSettings(EnvSettings):
    """The secret that signs email tracking links (shared by the interaction service and the collector)."""

    tracking_secret: SecretStr = SecretStr(DEV_TRACKING_SECRET)

    def tracking_problems(self) -> list[str]:
        if self.tracking_secret.get_secret_value() == DEV_TRACKING_SECRET:
            return ["TRACKING_SECRET is the development secret"]
        return []
