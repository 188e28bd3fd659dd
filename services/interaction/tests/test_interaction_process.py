"""The interaction service as a process: killed while it sends, it loses no email."""

import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email import policy

import pytest
from confluent_kafka import Producer
from interaction_factories import change, trigger

from ecrm_embedded.net import free_port
from ecrm_schemas.topics import PROFILE_CHANGES

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]
RULES = """
templates: [{id: welcome, subject: "Welcome {{ profile.customer_id }}", text: "Hello"}]
rules:
  - {id: welcome, name: Welcome, once_per_customer: true, trigger: {kind: event, event: identify},
     actions: [{kind: email, template: welcome}]}
"""


def test_sigkill_while_sending_loses_no_email_and_sends_again_only_what_was_in_flight(
    fresh_kafka_broker, smtp_sink, tmp_path
) -> None:
    customers = 300
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap, "linger.ms": 5})
    for c in range(customers):
        identified = trigger(message_id=f"id-{c}", at=datetime.now(UTC))  # within max_event_age
        value = change(identified, customer=f"c{c}", email=f"c{c}@example.com").encode()
        producer.produce(PROFILE_CHANGES.name, key=f"c{c}".encode(), value=value)
    producer.flush(10)
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": fresh_kafka_broker.bootstrap,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "DATABASE_URL": f"sqlite:///{tmp_path}/interaction.db",
        "SMTP_URL": smtp_sink.url,
        "INTERACTION_RULES_FILE": str(tmp_path / "rules.yaml"),
        "INTERACTION_QUIET_HOURS": "off",
        "INTERACTION_FREQUENCY_CAPS": "off",
        "INTERACTION_DISPATCH_INTERVAL_S": "0.1",
        "LOG_LEVEL": "WARNING",
        "SMTP_TIMEOUT_S": "3",
        "INTERACTION_WEBHOOK_TIMEOUT_S": "3",
    }
    log_path = tmp_path / "interaction.log"

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "ecrm_interaction", "serve"],
                env=env | {"INTERACTION_PORT": str(free_port())},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def sent() -> int:
        return len(smtp_sink.messages())

    kills = 0
    for threshold in (40, 120, 200):
        service = start()
        deadline = time.monotonic() + 90
        while sent() < threshold and time.monotonic() < deadline:
            assert service.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.02)
        service.send_signal(signal.SIGKILL)  # mid-stream: sends in flight, offsets uncommitted
        service.wait(10)
        kills += 1
        assert sent() < customers, "everything was sent before the kill; send more"
    service = start()
    try:
        deadline = time.monotonic() + 120  # actions a killed process had claimed wait for their lease to run out
        while len({m for m in _recipients(smtp_sink)}) < customers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
    finally:
        service.terminate()
        service.wait(30)
    counts = Counter(_recipients(smtp_sink))
    assert set(counts) == {f"c{c}@example.com" for c in range(customers)}, log_path.read_text()[-3000:]
    duplicated = {address: n for address, n in counts.items() if n > 1}
    # Only a message the server accepted in the instant before the kill, not yet recorded as
    # sent, can go twice: at most one per send in flight.
    assert sum(n - 1 for n in duplicated.values()) <= kills * 4, duplicated
    print(f"{sum(counts.values())} messages for {customers} customers after {kills} kills: {duplicated}")
    for address in duplicated:  # a second copy carries the first one's Message-ID
        assert len({m["Message-ID"] for m in _messages(smtp_sink) if m["To"] == address}) == 1


def _messages(sink) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sink.messages()]


def _recipients(sink) -> list[str]:
    return [m["To"] for m in _messages(sink)]
