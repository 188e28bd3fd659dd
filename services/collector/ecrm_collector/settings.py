"""The collector's settings: one class, read once from the environment at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from ecrm_collector.esp_webhooks import SNS_CERT_URL_PATTERN, load_sendgrid_public_key
from ecrm_schemas.settings import KafkaSettings, ServiceSettings, TrackingSettings

DEV_WRITE_KEY = "ecrm_dev_write_key"


class CollectorSettings(ServiceSettings, KafkaSettings, TrackingSettings):
    """Environment variables: the field names in upper case."""

    collector_host: str = "127.0.0.1"
    collector_port: int = 8080
    collector_workers: int = Field(default=1, ge=1)
    """Server processes on the port (uvicorn workers), each with its own Kafka producer."""
    collector_write_keys: SecretStr = SecretStr(DEV_WRITE_KEY)
    """Comma-separated write keys of server kind given in the environment (development, bootstrapping)."""
    collector_sources_file: Path | None = None
    """The sources registry (hashed write keys) managed by ``ecrm-collector sources``; re-read when it changes.
    In development it defaults to the dev stack's, ``ECRM_DATA_DIR/sources.json``."""
    collector_admin_token: SecretStr | None = None
    """The Bearer token of the collector's admin routes (``/admin/...``: replaying chosen dead
    letters), which the interaction service's API calls for the staff console; None: they answer 404."""
    ecrm_data_dir: Path = Path(".ecrm")
    """The development stack's data directory (``make run``), where development defaults live."""
    collector_public_url: str | None = None
    """The collector's address as mail recipients reach it, for ``ecrm-collector links sign``
    (development: ``http://COLLECTOR_HOST:COLLECTOR_PORT``)."""
    collector_rate_limit_per_s: float = Field(default=500.0, gt=0)
    """Requests per second each source may make on average (token bucket refill rate); over it: 429."""
    collector_rate_limit_burst: int = Field(default=1000, ge=1)
    """Requests a source may make at once after a quiet spell (token bucket size)."""
    collector_max_event_bytes: int = Field(default=32 * 1024, gt=0)
    collector_max_batch_bytes: int = Field(default=500 * 1024, gt=0)
    collector_produce_timeout_s: float = Field(default=10.0, gt=0)
    """How long a request waits for the broker's acknowledgment before answering 503."""
    collector_machine_open_s: float = Field(default=2.0, ge=0)
    """An open this soon after the email was sent is flagged as a machine open (prefetch, scanner)."""
    collector_linger_ms: int = Field(default=5, ge=0)
    collector_sendgrid_verification_key: str | None = None
    """SendGrid's Signed Event Webhook verification key (base64, as its settings page shows it);
    enables ``/v1/email/events/sendgrid``."""
    collector_mailgun_signing_key: SecretStr | None = None
    """Mailgun's HTTP webhook signing key; enables ``/v1/email/events/mailgun``."""
    collector_ses_topic_arns: str = ""
    """Comma-separated SNS topic ARNs whose SES notifications are accepted; enables ``/v1/email/events/ses``."""
    collector_sns_cert_url_pattern: str = SNS_CERT_URL_PATTERN
    """Where SNS signing certificates and subscription confirmations may be fetched from (AWS only)."""

    @field_validator("collector_sendgrid_verification_key")
    @classmethod
    def _loadable_sendgrid_key(cls, value: str | None) -> str | None:
        if value:
            load_sendgrid_public_key(value)  # ValueError names the problem at start-up
        return value or None

    @model_validator(mode="after")
    def _development_sources_file(self) -> CollectorSettings:
        # The same file ``make run`` gives the collector, so ``ecrm-collector sources add`` works as written.
        if self.collector_sources_file is None and self.ecrm_env == "development":
            self.collector_sources_file = self.ecrm_data_dir / "sources.json"
        return self

    def public_url(self) -> str | None:
        """Where recipients reach the collector (tracking links), if known."""
        if self.collector_public_url:
            return self.collector_public_url.rstrip("/")
        if self.ecrm_env == "development":
            return f"http://{self.collector_host}:{self.collector_port}"
        return None

    def ses_topic_arns(self) -> frozenset[str]:
        return frozenset(arn.strip() for arn in self.collector_ses_topic_arns.split(",") if arn.strip())

    def write_keys(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.collector_write_keys.get_secret_value().split(",") if k.strip())

    def production_problems(self) -> list[str]:
        problems = super().production_problems() + self.tracking_problems()
        if DEV_WRITE_KEY in self.write_keys():
            problems.append("COLLECTOR_WRITE_KEYS contains the development write key")
        return problems
