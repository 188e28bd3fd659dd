"""The collector as operators run it: ``ecrm-collector serve`` in its own process, over real HTTP.

Proves what only a real server shows: a huge body does not grow memory, a SIGTERM lets
in-flight requests finish and flushes them to Kafka, and the logs of a run never contain
a write key, an email address or a tracking token.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import SourceRegistry
from ecrm_embedded.net import free_port, wait_http_ok
from ecrm_embedded.processes import terminate
from ecrm_embedded.testing import read_topic
from ecrm_schemas.events import decode_event
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.tracking import TrackingToken, sign

pytestmark = pytest.mark.kafka


@dataclass
class CollectorProcess:
    process: subprocess.Popen[bytes]
    url: str
    key: str
    log_path: Path

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def auth(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.key}:".encode()).decode()}


def _start(bootstrap: str, tmp_path: Path, **env: str) -> CollectorProcess:
    registry = SourceRegistry()
    _, key = registry.add("backend", "server")
    registry.save(tmp_path / "sources.json")
    port = free_port()
    log_path = tmp_path / "collector.log"
    environment = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "COLLECTOR_PORT": str(port),
        "COLLECTOR_WRITE_KEYS": "",
        "COLLECTOR_SOURCES_FILE": str(tmp_path / "sources.json"),
        "LOG_LEVEL": "DEBUG",
        **env,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ecrm_collector", "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{url}/livez", timeout_s=30)
    return CollectorProcess(process, url, key, log_path)


def _stop(collector: CollectorProcess) -> None:
    terminate(collector.process, timeout_s=20)


@pytest.fixture
def collector(kafka_broker, tmp_path) -> Iterator[CollectorProcess]:
    running = _start(kafka_broker.bootstrap, tmp_path)
    yield running
    _stop(running)


def _stream_body(url: str, headers: dict[str, str], total: int, chunk: bytes, *, chunked: bool) -> tuple[int, bytes]:
    """POST a ``total``-byte body piece by piece (declared, or chunked with no length); return
    (bytes sent, the response's first bytes)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = ["POST /v1/batch HTTP/1.1", f"Host: {host}", length, "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    piece = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
    sent = 0
    try:
        while sent < total:
            sock.sendall(piece)
            sent += len(chunk)
    except OSError:
        pass  # the server answered and closed: it stopped reading, as it should
    sock.settimeout(10)
    try:
        answer = sock.recv(4096)
    except OSError:
        answer = b""
    sock.close()
    return sent, answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_one_gigabyte_body_is_refused_without_growing_memory(collector, chunked) -> None:
    before = collector.rss_bytes()
    chunk = b'{"batch": [' + b" " * (1 << 20)
    _sent, answer = _stream_body(collector.url, collector.auth(), total=1 << 30, chunk=chunk, chunked=chunked)
    growth = collector.rss_bytes() - before
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"too_large"' in answer
    assert growth < 50 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
    assert httpx.get(f"{collector.url}/livez").status_code == 200


def test_sigterm_lets_in_flight_requests_finish_and_flushes_them(fresh_kafka_broker, tmp_path) -> None:
    broker = fresh_kafka_broker
    running = _start(broker.bootstrap, tmp_path, COLLECTOR_PRODUCE_TIMEOUT_S="20")
    try:
        assert httpx.post(f"{running.url}/v1/page", headers=running.auth(), json={"userId": "warm"}).status_code == 200
        broker.process.send_signal(signal.SIGSTOP)  # acknowledgments now wait
        answers: list[int] = []

        def send() -> None:
            response = httpx.post(
                f"{running.url}/v1/track", headers=running.auth(), json={"userId": "inflight", "event": "E"}, timeout=30
            )
            answers.append(response.status_code)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)  # the request is in the collector, waiting for the broker
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        broker.process.send_signal(signal.SIGCONT)
        sender.join(30)
        # uvicorn re-raises SIGTERM once its graceful shutdown is done.
        assert running.process.wait(30) in (0, -signal.SIGTERM)
    finally:
        broker.process.send_signal(signal.SIGCONT)
        _stop(running)
    assert answers == [200]
    users = [decode_event(v).userId for _, v in read_topic(broker.bootstrap, EVENTS.name, expect=2, timeout_s=10)]
    assert users.count("inflight") == 1


def test_logs_never_contain_write_keys_emails_or_tokens(fresh_kafka_broker, tmp_path) -> None:
    broker = fresh_kafka_broker
    running = _start(broker.bootstrap, tmp_path, COLLECTOR_PRODUCE_TIMEOUT_S="1")
    secret = CollectorSettings().tracking_secret.get_secret_value()
    token = sign(TrackingToken(email_id="m-1", customer="log-1", url="https://shop.example.com/x"), secret)
    email = "ada.lovelace@example.com"
    try:
        auth = running.auth()
        httpx.post(f"{running.url}/v1/identify", headers=auth, json={"userId": "log-1", "traits": {"email": email}})
        httpx.post(f"{running.url}/v1/track", headers=auth, json={"userId": "log-1", "properties": {"email": email}})
        httpx.post(f"{running.url}/v1/track", headers={"Authorization": f"Bearer {running.key}x"}, json={})
        httpx.get(f"{running.url}/v1/e/c/{token}")
        httpx.get(f"{running.url}/v1/e/o/{token}x.gif")
        broker.process.send_signal(signal.SIGSTOP)  # a 503 path logs the failure
        identify = {"userId": "log-1", "traits": {"email": email}}
        failed = httpx.post(f"{running.url}/v1/identify", headers=auth, json=identify)
        assert failed.status_code == 503
    finally:
        broker.process.send_signal(signal.SIGCONT)
        _stop(running)
    logs = running.log_path.read_text()
    assert "produce_failed" in logs, "the run should have logged something to check"
    for secret_text in (running.key, email, token, secret):
        assert secret_text not in logs, f"a secret or personal value is in the logs: {secret_text[:6]}…"


def test_several_worker_processes_share_the_port(kafka_broker, tmp_path) -> None:
    running = _start(kafka_broker.bootstrap, tmp_path, COLLECTOR_WORKERS="2")
    try:
        with httpx.Client(base_url=running.url, headers=running.auth()) as http:
            statuses = [http.post("/v1/page", json={"userId": f"w-{i}"}).status_code for i in range(20)]
    finally:
        _stop(running)
    started = re.findall(r"Started server process \[(\d+)\]", running.log_path.read_text())
    assert len(set(started)) == 2, started
    assert statuses == [200] * 20
    users = {
        decode_event(v).userId for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=10_000, timeout_s=3)
    }
    assert {f"w-{i}" for i in range(20)} <= users


def test_links_signed_for_another_tools_mail_are_followed_and_recorded(collector, kafka_broker, monkeypatch) -> None:
    """`ecrm-collector links sign` prints URLs that the running collector accepts: the click
    redirects to the link and both click and open become events of the recipient."""
    from typer.testing import CliRunner

    from ecrm_collector.__main__ import cli

    monkeypatch.setenv("COLLECTOR_PUBLIC_URL", collector.url)
    args = ["links", "sign", "--url", "https://shop.example.com/sale?x=1", "--url", "https://shop.example.com/new",
            "--user-id", "links-ada", "--campaign", "black-friday"]  # fmt: skip
    printed = CliRunner().invoke(cli, args)
    assert printed.exit_code == 0, printed.output
    lines = [line.split("\t") for line in printed.stdout.splitlines()]
    email_id = next(parts[1] for parts in lines if parts[0] == "email_id")
    clicks = [(parts[1], parts[2]) for parts in lines if parts[0] == "click"]
    [pixel] = [parts[1] for parts in lines if parts[0] == "open"]
    assert [target for _, target in clicks] == ["https://shop.example.com/sale?x=1", "https://shop.example.com/new"]

    browser = {"User-Agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15"}
    time.sleep(2.1)  # past the prefetch window: a person's open
    for signed, target in clicks:
        followed = httpx.get(signed, headers=browser, follow_redirects=False, timeout=10)
        assert (followed.status_code, followed.headers["location"]) == (302, target)
    opened = httpx.get(pixel, headers=browser, timeout=10)
    assert (opened.status_code, opened.headers["content-type"]) == (200, "image/gif")
    tampered = httpx.get(clicks[0][0][:-3] + "xyz", timeout=10)
    assert tampered.status_code == 400

    events = [decode_event(v) for _, v in read_topic(kafka_broker.bootstrap, EVENTS.name, expect=200, timeout_s=5)]
    mine = [e for e in events if e.userId == "links-ada"]
    assert sorted(e.event for e in mine) == ["Email Link Clicked", "Email Link Clicked", "Email Opened"]
    assert {(e.properties["email_id"], e.properties["campaign_id"]) for e in mine} == {(email_id, "black-friday")}
    assert [e.properties.get("machine_open") for e in mine if e.event == "Email Opened"] == [False]
