"""pytest fixtures that start the real components: broker, ClickHouse engine, SMTP, PostgreSQL.

Loaded by the top-level ``conftest.py``. Each fixture starts a real process on a free
loopback port and stops it afterwards; nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import free_port, wait_http_ok
from ecrm_embedded.postgres import PostgresCluster, find_pg_bin
from ecrm_embedded.smtp_sink import SmtpSink
from ecrm_schemas.clickhouse import clickhouse_client
from ecrm_schemas.kafka_admin import ensure_topics


def _broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = TansuBroker(port=free_port(), log_path=log).start()
    ensure_topics({"bootstrap.servers": broker.bootstrap})
    yield broker
    broker.stop(timeout_s=0.5)  # its memory storage is thrown away: no need for the 5 s graceful stop


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A tansu broker shared by a test module, with the registry's topics created."""
    yield from _broker(tmp_path_factory)


@pytest.fixture
def fresh_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A tansu broker of the test's own, for tests that leave the topics unusable for others."""
    yield from _broker(tmp_path_factory)


class ClickHouseServer:
    """``python -m ecrm_embedded.clickhouse_http`` as a subprocess; restartable on the same data dir."""

    def __init__(self, data_path: Path, log_path: Path) -> None:
        self.data_path, self.log_path = data_path, log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ClickHouseServer:
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ecrm_embedded.clickhouse_http", "--data-path", str(self.data_path),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_http_ok(f"{self.url}/ping", timeout_s=120)
        return self

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit code (uvicorn re-raises SIGTERM after a graceful shutdown)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def client(self, **kwargs: Any) -> Client:
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, **kwargs)

    def service_client(self) -> Client:
        """A client built as the services build theirs (no session: shared between threads)."""
        return clickhouse_client(f"http://127.0.0.1:{self.port}", "default", SecretStr(""))


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """One chdb-backed ClickHouse HTTP server for the session; tests isolate by database."""
    base = tmp_path_factory.mktemp("clickhouse")
    server = ClickHouseServer(base / "data", base / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def clickhouse_database() -> str:
    """A database name unique to the test (created by the migrations that use it)."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tmp_path / "mail", port=free_port()).start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the session (server binaries from the machine)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="ecrm-pg-")), free_port(), bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's PostgreSQL cluster."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_cluster.url().replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_cluster.url(name)


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0) -> list[tuple[bytes | None, bytes]]:
    """Read a topic from the beginning of every partition until ``expect`` records arrived.

    Uses partition assignment (no consumer group), so it never waits for a group join.
    """
    return [(key, value) for key, value, _ in read_records(bootstrap, topic, expect=expect, timeout_s=timeout_s)]


def read_records(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0
) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes | None]]]]:
    """:func:`read_topic` with each record's Kafka headers: ``(key, value, headers)``."""
    import time

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[tuple[bytes | None, bytes, list[tuple[str, bytes | None]]]] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            raw = message.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = [(name, value.encode() if isinstance(value, str) else value) for name, value in pairs]
            records.append((message.key(), message.value() or b"", headers))
        return records
    finally:
        consumer.close()


# Without the background-networking flags Chromium phones home at start-up; in a closed
# network those connections are refused and slow everything down.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


@contextmanager
def headless_chromium(needed_by: str) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (its own browser download cannot work
    here); skipped when it is missing, failed under CI (``make test`` installs it)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        message = f"Chromium is required for {needed_by} (make test installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
