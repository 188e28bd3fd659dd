"""The interaction service's settings: one class, read once from the environment at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from ecrm_schemas.settings import KafkaSettings, ServiceSettings

DEV_API_TOKEN = "ecrm_dev_api_token"


class InteractionSettings(ServiceSettings, KafkaSettings):
    """Environment variables: the field names in upper case."""

    database_url: str = "sqlite:///.ecrm/interaction.db"
    """SQLAlchemy URL: SQLite by default, ``postgresql+psycopg://...`` in production."""
    smtp_url: str = "smtp://127.0.0.1:1025"
    """``smtp://[user:password@]host:port`` (STARTTLS when offered) or ``smtps://`` (implicit TLS)."""
    email_from: str = "eCRM <hello@ecrm.localhost>"
    interaction_host: str = "127.0.0.1"
    interaction_port: int = 8081
    interaction_group_id: str = "ecrm-interaction"
    interaction_api_token: SecretStr = SecretStr(DEV_API_TOKEN)
    """Bearer token for the REST API."""
    interaction_rules_file: Path | None = None
    """A YAML file of rules and templates loaded (created or updated) at start-up."""
    interaction_batch_size: int = Field(default=100, gt=0)
    smtp_timeout_s: float = Field(default=30.0, gt=0)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.interaction_api_token.get_secret_value() == DEV_API_TOKEN:
            problems.append("INTERACTION_API_TOKEN is the development token")
        if self.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL is SQLite; use PostgreSQL in production")
        return problems
