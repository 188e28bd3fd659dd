"""Faults under load, on the whole `make run` stack (``make test-reliability``).

- the broker frozen for 30 s while events stream in: the collector answers 503 with
  ``Retry-After`` (never 2xx for what Kafka did not acknowledge), turns unready, recovers by
  itself; every event it acknowledged, before and after, is stored and folded once;
- the SMTP server down for 30 s while welcome emails are due: they wait, are retried, and
  all arrive once it is back, none twice;
- the aggregator SIGKILLed three times while 100,000 events stream in: ClickHouse ends with
  exactly the acknowledged events and profiles equal to an oracle's.
"""

import email
import itertools
import random
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
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

    @staticmethod
    def event(message_id: str, n: int) -> dict:
        return {"type": "track", "messageId": message_id, "userId": f"load-{n % 50}", "event": "Product Viewed",
                "properties": {"product_id": f"p{n % 10}"}}  # fmt: skip

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
                batch = [self.event(m, worker * 7 + k) for k, m in enumerate(ids)]
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


def _respawn(stack: Stack, child: Child, env: dict[str, str] | None = None) -> Child:
    """Start a stopped component again, as the stack started it."""
    stack.children.remove(child)
    return stack._spawn(child.name, list(child.process.args), env)  # type: ignore[arg-type]


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


NO_RULES = "templates: []\nrules: []\n"
STREAM_EVENTS = 100_000


def _shop_event(n: int, rng: random.Random) -> dict:
    customer = f"kill-{rng.randrange(2000)}"
    kind = rng.random()
    if kind < 0.4:
        return {"type": "page", "userId": customer, "name": "Home", "messageId": f"k-{n}"}
    if kind < 0.9:
        return {"type": "track", "userId": customer, "event": "Product Viewed", "messageId": f"k-{n}",
                "properties": {"product_id": f"p{rng.randrange(100)}"}}  # fmt: skip
    return {"type": "track", "userId": customer, "event": "Order Completed", "messageId": f"k-{n}",
            "properties": {"order_id": f"o{n}", "total": rng.randrange(100, 20000) / 100}}  # fmt: skip


def test_the_aggregator_killed_three_times_in_a_live_stream_ends_with_the_oracles_profiles(tmp_path) -> None:
    """100,000 events through the collector at about 2,000 a second; the aggregator is SIGKILLed
    three times meanwhile and started again. Afterwards ClickHouse holds exactly the events
    the collector acknowledged, and every profile equals one recomputed from them."""
    rules = tmp_path / "no-rules.yaml"
    rules.write_text(NO_RULES)
    settings = StackSettings(
        ecrm_data_dir=tmp_path / "ecrm", interaction_rules_file=rules,
        kafka_port=free_port(), clickhouse_port=free_port(), smtp_port=free_port(), collector_port=free_port(),
        interaction_port=free_port(), aggregator_metrics_port=free_port(), collector_write_keys=KEY,
    )  # fmt: skip
    stack = Stack(settings)
    rng = random.Random(11)
    events = [_shop_event(n, rng) for n in range(STREAM_EVENTS)]
    acked: list[dict] = []
    statuses: Counter[int] = Counter()
    try:
        stack.start()

        def send() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{settings.collector_port}", auth=(KEY, ""), timeout=30) as c:
                started = time.monotonic()
                for i, start in enumerate(range(0, len(events), 100)):
                    batch = events[start : start + 100]
                    status = c.post("/v1/batch", json={"batch": batch}).status_code
                    statuses[status] += 1
                    if status == 200:
                        acked.extend(batch)
                    time.sleep(max(0.0, started + (i + 1) * 0.05 - time.monotonic()))  # 2,000 events/s

        sender = threading.Thread(target=send)
        sender.start()
        began = time.monotonic()
        for at in (8, 20, 32):  # seconds into the stream
            time.sleep(max(0.0, began + at - time.monotonic()))
            [aggregator] = [c for c in stack.children if c.name == "aggregator"]
            aggregator.process.send_signal(signal.SIGKILL)
            aggregator.process.wait(10)
            time.sleep(2)
            _respawn(stack, aggregator, stack.service_env())
        sender.join()
        assert statuses == {200: STREAM_EVENTS // 100}, statuses

        ch = clickhouse_connect.get_client(host="127.0.0.1", port=settings.clickhouse_port)
        oracle: dict[str, list] = {}
        for event in acked:
            profile = oracle.setdefault(event["userId"], [0, 0, 0, Decimal(0)])
            profile[0] += 1
            profile[1] += event["type"] == "page"
            if event.get("event") == "Order Completed":
                profile[2] += 1
                profile[3] += Decimal(str(event["properties"]["total"]))

        def profiles() -> dict[str, list]:
            rows = ch.query(
                "SELECT customer_id, event_count, page_views, orders, revenue FROM ecrm.profiles FINAL "
                "WHERE startsWith(customer_id, 'kill-')"
            ).result_rows
            return {r[0]: [r[1], r[2], r[3], Decimal(r[4])] for r in rows}

        assert _eventually(lambda: sum(p[0] for p in profiles().values()) >= len(acked), 300)
        time.sleep(5)  # anything folded twice would show now
        stored = ch.query(
            "SELECT count(), uniqExact(message_id) FROM ecrm.events FINAL WHERE startsWith(customer_id, 'kill-')"
        ).result_rows[0]  # fmt: skip
        assert stored == (len(acked), len(acked)), "0 lost, 0 duplicated"
        found = profiles()
        wrong = {c: (found.get(c), expected) for c, expected in oracle.items() if found.get(c) != expected}
        assert not wrong, f"{len(wrong)} profiles differ from the oracle, e.g. {list(wrong.items())[:3]}"
        assert set(found) == set(oracle)
    finally:
        stack.stop()
