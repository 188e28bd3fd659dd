"""Faults under load, on the whole `make run` stack (``make test-reliability``).

- the broker frozen for 30 s while events stream in: the collector answers 503 with
  ``Retry-After`` (never 2xx for what Kafka did not acknowledge), turns unready, recovers by
  itself; every event it acknowledged, before and after, is stored and folded once;
- the SMTP server down for 30 s while welcome emails are due: they wait, are retried, and
  all arrive once it is back, none twice.
"""

import email
import itertools
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email import policy

import clickhouse_connect
import httpx
import pytest

from ecrm_embedded.net import free_port
from ecrm_embedded.stack import Child, Stack, StackSettings

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.smtp]
KEY = "faults-write-key"
OUTAGE_S = 30.0


@pytest.fixture
def stack(tmp_path):
    settings = StackSettings(
        ecrm_data_dir=tmp_path / "ecrm",
        kafka_port=free_port(), clickhouse_port=free_port(), smtp_port=free_port(), collector_port=free_port(),
        interaction_port=free_port(), aggregator_metrics_port=free_port(), collector_write_keys=KEY,
    )  # fmt: skip
    running = Stack(settings)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def _eventually(probe, timeout_s: float = 120.0, every_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


@dataclass
class Load:
    """Batches of 10 events from 8 threads, each event with its own message id."""

    url: str
    acked: list[str] = field(default_factory=list)
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)
    """(when, status, Retry-After) of every request."""
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for n in range(8):
            thread = threading.Thread(target=self._send, args=(n,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _send(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, auth=(KEY, ""), timeout=30) as client:
            for i in itertools.count():
                if self.stopping.is_set():
                    return
                ids = [f"load-{worker}-{i}-{k}-{uuid.uuid4().hex[:8]}" for k in range(10)]
                batch = [{"type": "track", "messageId": m, "userId": f"load-{(worker * 7 + k) % 50}",
                          "event": "Product Viewed", "properties": {"product_id": f"p{k}"}} for k, m in enumerate(ids)]  # fmt: skip
                try:
                    response = client.post("/v1/batch", json={"batch": batch})
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                except httpx.HTTPError:
                    status, retry_after = 0, None
                with self.lock:
                    self.answers.append((time.monotonic(), status, retry_after))
                    if status == 200:
                        self.acked.extend(ids)
                time.sleep(0.05)


def test_the_broker_frozen_under_load_loses_no_acknowledged_event(stack: Stack) -> None:
    s = stack.settings
    collector = f"http://127.0.0.1:{s.collector_port}"
    load = Load(collector)
    load.start()
    time.sleep(15)
    assert stack.broker is not None and stack.broker.process is not None
    stack.broker.process.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    readiness = []
    while time.monotonic() - frozen_at < OUTAGE_S:
        try:
            readiness.append(httpx.get(f"{collector}/readyz", timeout=5).status_code)
        except httpx.HTTPError:
            readiness.append(0)
        time.sleep(1)
    stack.broker.process.send_signal(signal.SIGCONT)
    thawed_at = time.monotonic()
    ready_again = _eventually(lambda: httpx.get(f"{collector}/readyz", timeout=5).status_code == 200, 60)
    time.sleep(20)
    load.stop()

    before = [a for a in load.answers if a[0] < frozen_at]
    during = [a for a in load.answers if frozen_at + 12 < a[0] < thawed_at]  # once the produce timeout (10 s) ran out
    after = [a for a in load.answers if a[0] > thawed_at + 15]
    print(f"\nrequests: before {Counter(a[1] for a in before)}, during {Counter(a[1] for a in during)}, "
          f"after {Counter(a[1] for a in after)}; readiness while frozen {Counter(readiness)}; "
          f"{len(load.acked)} events acknowledged")  # fmt: skip
    assert before and all(status == 200 for _, status, _ in before)
    assert during and all(status == 503 and retry for _, status, retry in during), Counter(a[1] for a in during)
    assert 503 in readiness and ready_again
    assert after and all(status == 200 for _, status, _ in after), "the collector recovered by itself"

    ch = clickhouse_connect.get_client(host="127.0.0.1", port=s.clickhouse_port)
    acked = set(load.acked)

    def stored() -> set[str]:
        rows = ch.query("SELECT DISTINCT message_id FROM ecrm.events WHERE startsWith(customer_id, 'load-')")
        return {r[0] for r in rows.result_rows}

    assert _eventually(lambda: acked <= stored(), 180), f"{len(acked - stored())} acknowledged events are missing"
    unique = len(stored())
    folded = _eventually(lambda: (n := ch.query(
        "SELECT sum(event_count) FROM ecrm.profiles FINAL WHERE startsWith(customer_id, 'load-')"
    ).result_rows[0][0]) == unique and n, 120)  # fmt: skip
    assert folded == unique, "every stored event is folded into its profile once"


def _respawn(stack: Stack, child: Child) -> None:
    s = stack.settings
    stack.children.remove(child)
    stack._spawn("smtp", [child.process.args[0], "-m", "ecrm_embedded.smtp_sink", "--dir", str(stack.data_dir / "mail"),
                          "--port", str(s.smtp_port)])  # fmt: skip


def test_an_smtp_outage_delays_the_welcome_emails_and_sends_each_once(stack: Stack) -> None:
    s = stack.settings
    collector = f"http://127.0.0.1:{s.collector_port}"
    [smtp] = [c for c in stack.children if c.name == "smtp"]
    smtp.process.terminate()
    smtp.process.wait(10)
    customers = [f"smtp-{n}" for n in range(120)]
    with httpx.Client(base_url=collector, auth=(KEY, ""), timeout=30) as client:
        for start in range(0, len(customers), 20):
            batch = [{"type": "identify", "userId": c, "traits": {"email": f"{c}@example.com", "firstName": c}}
                     for c in customers[start : start + 20]]  # fmt: skip
            assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
    time.sleep(OUTAGE_S)
    mail = stack.data_dir / "mail"
    assert not [p for p in mail.glob("*.eml") if b"smtp-" in p.read_bytes()], "nothing was delivered while down"
    _respawn(stack, smtp)

    def welcomes() -> Counter[str]:
        found: Counter[str] = Counter()
        for path in mail.glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if str(message["To"]).startswith("smtp-") and str(message["Subject"]).startswith("Welcome"):
                found[str(message["To"])] += 1
        return found

    assert _eventually(lambda: len(welcomes()) == len(customers), 180), f"{len(welcomes())} of {len(customers)}"
    time.sleep(10)  # a second send, if any, would come now
    sent = welcomes()
    assert set(sent) == {f"{c}@example.com" for c in customers}
    assert max(sent.values()) == 1, {to: n for to, n in sent.items() if n > 1}
