"""The embedded development stack behind ``make run``: every component on loopback.

Starts, in order: the tansu broker (and the registry's topics), ClickHouse (chdb served
over ClickHouse's HTTP interface), the SMTP sink, then the aggregator, the interaction
service and the collector as separate processes, configured exactly as in production:
through environment variables. A service that exits is started again, as Kubernetes would
(a crash loop, 5 restarts in 5 minutes, or infrastructure dying stops the stack). Stops
everything, in reverse order, on Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import wait_http_ok
from ecrm_embedded.processes import terminate
from ecrm_schemas.kafka_admin import ensure_topics
from ecrm_schemas.sources import editing

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_RULES = REPO_ROOT / "services" / "interaction" / "examples" / "rules.yaml"
EXAMPLE_KNOWLEDGE = REPO_ROOT / "services" / "interaction" / "examples" / "knowledge_base.yaml"
DEV_WEBSITE_KEY = "wkb_dev_website_key"
"""The development stack's browser source (``website``, any origin): the chat widget's and ecrm.js's key."""
DEV_IDENTITY_SECRET = "ecrm_dev_identity_secret"
"""The development stack's secret of the chat widget's identity tokens."""
DEV_COLLECTOR_ADMIN_TOKEN = "ecrm_dev_collector_admin_token"
"""The collector admin routes' token in the development stack (the interaction API replays dead letters with it)."""


class StackSettings(BaseSettings):
    """Ports and the data directory of the dev stack (environment variables, upper case)."""

    model_config = SettingsConfigDict(extra="ignore")

    ecrm_data_dir: Path = Path(".ecrm")
    kafka_port: int = 9092
    clickhouse_port: int = 8123
    smtp_port: int = 1025
    collector_port: int = 8080
    interaction_port: int = 8081
    aggregator_metrics_port: int = 9101
    collector_write_keys: str = "ecrm_dev_write_key"
    interaction_api_token: str = "ecrm_dev_api_token"
    interaction_rules_file: Path = EXAMPLE_RULES
    interaction_assistant_knowledge_file: Path = EXAMPLE_KNOWLEDGE
    database_url: str = ""
    """The interaction service's database; empty: SQLite in the data directory."""
    startup_timeout_s: float = Field(default=180, gt=0)


RESTART_LIMIT = 5
"""Restarts of one service within :data:`RESTART_WINDOW_S` before the stack gives up (a crash loop)."""
RESTART_WINDOW_S = 300.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    restartable: bool = False
    """A service (not infrastructure): restarted when it exits, as Kubernetes would."""
    restarts: list[float] = field(default_factory=list)
    """When it was restarted (monotonic seconds)."""


@dataclass
class Stack:
    settings: StackSettings
    broker: TansuBroker | None = None
    children: list[Child] = field(default_factory=list)
    console_password: str = ""

    @property
    def data_dir(self) -> Path:
        return self.settings.ecrm_data_dir.resolve()

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None, restartable: bool = False) -> Child:
        log_path = self.data_dir / "logs" / f"{name}.log"
        child = Child(name, _popen(args, env, log_path), log_path, args, env, restartable)
        self.children.append(child)
        return child

    def service_env(self) -> dict[str, str]:
        s = self.settings
        return {
            "ECRM_ENV": "development",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{s.kafka_port}",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CLICKHOUSE_URL": f"http://127.0.0.1:{s.clickhouse_port}",
            "DATABASE_URL": s.database_url or f"sqlite:///{self.data_dir / 'interaction.db'}",
            "SMTP_URL": f"smtp://127.0.0.1:{s.smtp_port}",
            "COLLECTOR_PORT": str(s.collector_port),
            "COLLECTOR_WRITE_KEYS": s.collector_write_keys,
            "COLLECTOR_SOURCES_FILE": str(self.data_dir / "sources.json"),
            "INTERACTION_PORT": str(s.interaction_port),
            "INTERACTION_API_TOKEN": s.interaction_api_token,
            "INTERACTION_RULES_FILE": str(s.interaction_rules_file),
            "INTERACTION_ASSISTANT_KNOWLEDGE_FILE": str(s.interaction_assistant_knowledge_file),
            "INTERACTION_ASSISTANT_IDENTITY_SECRET": DEV_IDENTITY_SECRET,
            "INTERACTION_PUBLIC_URL": f"http://127.0.0.1:{s.interaction_port}",
            "INTERACTION_TRACKING_URL": f"http://127.0.0.1:{s.collector_port}",
            "INTERACTION_QUIET_HOURS": "off",
            "AGGREGATOR_METRICS_PORT": str(s.aggregator_metrics_port),
            "COLLECTOR_ADMIN_TOKEN": DEV_COLLECTOR_ADMIN_TOKEN,
            "INTERACTION_COLLECTOR_ADMIN_URL": f"http://127.0.0.1:{s.collector_port}",
            "INTERACTION_METRICS_URLS": f"collector=http://127.0.0.1:{s.collector_port}/metrics,"
            f"aggregator=http://127.0.0.1:{s.aggregator_metrics_port}/metrics",
        }

    def start(self) -> None:
        s, timeout = self.settings, self.settings.startup_timeout_s
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "mail").mkdir(parents=True, exist_ok=True)
        py = sys.executable

        self.broker = TansuBroker(port=s.kafka_port, log_path=self.data_dir / "logs" / "kafka.log").start(timeout)
        ensure_topics({"bootstrap.servers": self.broker.bootstrap})
        self._spawn("clickhouse", [py, "-m", "ecrm_embedded.clickhouse_http", "--data-path",
                                   str(self.data_dir / "clickhouse"), "--port", str(s.clickhouse_port)])  # fmt: skip
        self._spawn("smtp", [py, "-m", "ecrm_embedded.smtp_sink", "--dir", str(self.data_dir / "mail"),
                             "--port", str(s.smtp_port)])  # fmt: skip
        self._wait(f"http://127.0.0.1:{s.clickhouse_port}/ping", timeout)

        env = self.service_env()
        self._ensure_website_source()
        self._spawn("aggregator", [py, "-m", "ecrm_aggregator", "serve"], env, restartable=True)
        self._spawn("interaction", [py, "-m", "ecrm_interaction", "serve"], env, restartable=True)
        self._spawn("collector", [py, "-m", "ecrm_collector", "serve"], env, restartable=True)
        self._wait(f"http://127.0.0.1:{s.aggregator_metrics_port}/metrics", timeout)
        self._wait(f"http://127.0.0.1:{s.interaction_port}/readyz", timeout)
        self._wait(f"http://127.0.0.1:{s.collector_port}/readyz", timeout)
        self.console_password = self._ensure_dev_login(env)

    DEV_LOGIN: ClassVar[str] = "admin@ecrm.localhost"

    def _ensure_website_source(self) -> None:
        """The browser source ``website`` (any origin) with the development key, for the chat
        widget and ecrm.js on a page of one's own: a development stack only."""
        with editing(self.data_dir / "sources.json") as registry:
            if registry.find(DEV_WEBSITE_KEY) is None:
                registry.add_known_key("website", "browser", DEV_WEBSITE_KEY)

    def _ensure_dev_login(self, env: dict[str, str]) -> str:
        """The development console login (an admin), made with the CLI an operator uses for the
        first admin; its password is kept in ``console-login`` in the data dir (mode 0600) and
        printed by the banner: a development stack only."""
        kept = self.data_dir / "console-login"
        if not kept.exists():
            kept.touch(mode=0o600)
            kept.write_text(secrets.token_urlsafe(12) + "\n")
        password = kept.read_text().strip()
        done = subprocess.run(
            [sys.executable, "-m", "ecrm_interaction", "users", "add", self.DEV_LOGIN, "--role", "admin",
             "--name", "Development admin", "--password-stdin", "--update"],
            input=password + "\n", capture_output=True, text=True, timeout=120, env={**os.environ, **env},
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"could not create the development console login: {done.stderr[-2000:]}")
        return password

    def _wait(self, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_children()
            try:
                wait_http_ok(url, timeout_s=1)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not become ready within {timeout_s:.0f} s") from None

    def check_children(self) -> None:
        """Restart a service that exited (one process stopping does not stop the others); raise
        if infrastructure died or a service keeps exiting. The log's last lines say why."""
        for child in self.children:
            if child.process.poll() is None:
                continue
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
            tail = "\n".join(child.log_path.read_text(errors="replace").splitlines()[-20:])
            code = child.process.returncode
            if not child.restartable or len(child.restarts) >= RESTART_LIMIT:
                again = f" after {len(child.restarts)} restarts in {RESTART_WINDOW_S:.0f} s" if child.restarts else ""
                raise RuntimeError(
                    f"{child.name} exited with code {code}{again}; last lines of {child.log_path}:\n{tail}"
                )
            print(f"{child.name} exited with code {code}; restarting it (log: {child.log_path})",
                  file=sys.stderr, flush=True)  # fmt: skip
            child.restarts.append(now)
            child.process = _popen(child.args, child.env, child.log_path)
        if self.broker and self.broker.process and self.broker.process.poll() is not None:
            raise RuntimeError("the Kafka broker exited; see " + str(self.data_dir / "logs" / "kafka.log"))

    def stop(self) -> None:
        """Stop the services (newest first), then the infrastructure they write to.

        A service is stopped only after the ones started after it have exited, so nothing
        loses its broker, ClickHouse or SMTP server while it is still finishing work.
        """
        for child in reversed(self.children):
            terminate(child.process)
        if self.broker is not None:
            self.broker.stop()

    def banner(self) -> str:
        s, d = self.settings, self.data_dir
        key = s.collector_write_keys.split(",")[0]
        return f"""
eCRM is running (development stack, data in {d})

  Collector (ingest API)   http://127.0.0.1:{s.collector_port}      docs: http://127.0.0.1:{s.collector_port}/docs
  Interaction API          http://127.0.0.1:{s.interaction_port}      token: {s.interaction_api_token}
  Staff console            http://127.0.0.1:{s.interaction_port}/console
                           sign in: {self.DEV_LOGIN}   password: {self.console_password}
  ClickHouse (HTTP)        http://127.0.0.1:{s.clickhouse_port}      database: ecrm
  Kafka (tansu, memory)    127.0.0.1:{s.kafka_port}
  SMTP sink                127.0.0.1:{s.smtp_port}      mail saved as .eml in {d / "mail"}
  Aggregator metrics       http://127.0.0.1:{s.aggregator_metrics_port}/metrics
  Logs                     {d / "logs"}

Development write key: {key}      (browser source "website": {DEV_WEBSITE_KEY})
Website assistant demo:  http://127.0.0.1:{s.interaction_port}/chat-demo?key={DEV_WEBSITE_KEY}
                         signed in as ada: add &user=ada (the page computes her identity token)

Try it:
  curl -u {key}: http://127.0.0.1:{s.collector_port}/v1/identify \\
       -H 'Content-Type: application/json' \\
       -d '{{"userId": "ada", "traits": {{"email": "ada@example.com", "firstName": "Ada"}}}}'
  curl 'http://127.0.0.1:{s.clickhouse_port}/?query=SELECT+customer_id,email,event_count+FROM+ecrm.profiles+FINAL+FORMAT+PrettyCompact'
  ls {d / "mail"}

Press Ctrl-C to stop.
"""


def _popen(args: list[str], env: dict[str, str] | None, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )


def run(settings: StackSettings | None = None) -> int:
    """Start the stack, print where everything is, and run until Ctrl-C, infrastructure dies or a
    service keeps exiting (see :meth:`Stack.check_children`)."""
    stack = Stack(settings or StackSettings())
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        print("starting the eCRM development stack...", flush=True)
        stack.start()
        print(stack.banner(), flush=True)
        while not stopping:
            time.sleep(0.5)
            stack.check_children()
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("stopping...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
