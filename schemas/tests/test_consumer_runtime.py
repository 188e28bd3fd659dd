"""The consumer runtime: its pure batching against stand-in messages, then the whole loop against
the real broker (batching by size and time, commits after processing, the fatal policy, rebalances)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ecrm_schemas.consumer_runtime import BatchFailed, PendingBatch, StreamRuntime, Where, next_offsets
from ecrm_schemas.settings import KafkaSettings, consumer_config


@dataclass
class Msg:
    """The four fields of a client message the batching reads."""

    t: str
    p: int
    o: int
    ts_ms: int = 0

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def timestamp(self) -> tuple[int, int]:
        return (1, self.ts_ms)


def test_a_batch_is_due_when_full_or_when_its_oldest_record_is_old_enough() -> None:
    batch: PendingBatch[Msg] = PendingBatch(max_size=3, max_wait_s=0.5)
    assert not batch.due(100.0) and batch.wait_s(100.0) == 0.05
    batch.add([Msg("a", 0, 1, ts_ms=99_900)], now=100.0)  # produced 0.1 s ago: its clock started then
    assert batch.opened_at == 99.9 and not batch.due(100.3) and batch.due(100.4)
    assert batch.wait_s(100.2) == pytest.approx(0.2)
    batch.add([Msg("a", 0, 2), Msg("a", 1, 7)], now=100.1)
    assert batch.due(100.1) and batch.room == 1
    assert [m.o for m in batch.take()] == [1, 2, 7] and batch.opened_at is None and not batch.due(1e9)


def test_a_record_produced_in_the_future_starts_the_clock_on_arrival() -> None:
    batch: PendingBatch[Msg] = PendingBatch(max_size=10, max_wait_s=1.0)
    batch.add([Msg("a", 0, 1, ts_ms=500_000)], now=100.0)
    assert batch.opened_at == 100.0


def test_revoked_partitions_lose_their_buffered_records_and_only_theirs() -> None:
    batch: PendingBatch[Msg] = PendingBatch(max_size=10, max_wait_s=1.0)
    batch.add([Msg("a", 0, 1), Msg("b", 0, 1), Msg("a", 1, 5)], now=1.0)
    batch.drop({("a", 0)})
    assert [(m.t, m.p) for m in batch.messages] == [("b", 0), ("a", 1)] and batch.opened_at == 1.0
    batch.drop({("b", 0), ("a", 1)})
    assert batch.messages == [] and batch.opened_at is None


def test_the_offsets_committed_are_one_past_the_last_record_of_each_partition() -> None:
    messages = [Msg("a", 0, 4), Msg("b", 0, 9), Msg("a", 0, 5), Msg("a", 2, 0)]
    assert next_offsets(messages) == {("a", 0): 6, ("b", 0): 10, ("a", 2): 1}


def test_one_builder_makes_every_consumer_config() -> None:
    settings = KafkaSettings(kafka_bootstrap_servers="k:9092", kafka_session_timeout_ms=6000)
    grouped = settings.kafka_consumer_config("g", **{"fetch.wait.max.ms": 50})
    assert grouped["group.id"] == "g" and grouped["bootstrap.servers"] == "k:9092"
    assert grouped["enable.auto.commit"] is False and grouped["auto.offset.reset"] == "earliest"
    assert grouped["partition.assignment.strategy"] == "range", "co-partitioned topics"
    assert grouped["session.timeout.ms"] == 6000 and grouped["heartbeat.interval.ms"] == 600
    assert grouped["fetch.wait.max.ms"] == 50
    follower = consumer_config({"bootstrap.servers": "k:9092"})
    assert "session.timeout.ms" not in follower and follower["enable.auto.commit"] is False


# --- against the real broker ------------------------------------------------------------------


class Recorder:
    """A strategy factory remembering every assignment, batch and tick; ``fail_on`` batch numbers raise."""

    def __init__(self, stop_after: int, fail_on: frozenset[int] = frozenset()) -> None:
        self.stop_after, self.fail_on = stop_after, fail_on
        self.runtime: StreamRuntime[tuple[int, int]] | None = None
        self.batches: list[list[tuple[int, int]]] = []
        self.batch_times: list[float] = []
        self.assignments: list[frozenset[Where]] = []
        self.closed: list[frozenset[Where]] = []
        self.committed_during: list[dict[int, int]] = []
        self.committed_probe: Any = None

    def create(self, partitions: frozenset[Where]) -> Any:
        self.assignments.append(partitions)
        recorder = self

        class _Strategy:
            def process(self, batch: list[tuple[int, int]]) -> None:
                if recorder.committed_probe is not None:
                    recorder.committed_during.append(recorder.committed_probe())
                recorder.batches.append(batch)
                recorder.batch_times.append(time.monotonic())
                if len(recorder.batches) in recorder.fail_on:
                    raise ValueError("cannot process this batch")
                if sum(map(len, recorder.batches)) >= recorder.stop_after and recorder.runtime is not None:
                    recorder.runtime.stop()

            def tick(self, lag: Mapping[Where, int]) -> None:
                pass

            def close(self) -> None:
                recorder.closed.append(partitions)

        return _Strategy()


def _topic(bootstrap: str, partitions: int = 2) -> str:
    name = f"runtime-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(10)
    return name


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 2) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, value=str(i).encode(), partition=i % partitions)
    producer.flush(10)


def _committed(bootstrap: str, group: str, topic: str, partitions: int = 2) -> dict[int, int]:
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        done = probe.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in done}
    finally:
        probe.close()


def _runtime(bootstrap: str, group: str, topic: str, recorder: Recorder, size: int, wait_s: float) -> StreamRuntime:
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap, kafka_session_timeout_ms=6000)
    runtime: StreamRuntime[tuple[int, int]] = StreamRuntime(
        settings.kafka_consumer_config(group), [topic], recorder,
        lambda m: (m.partition() or 0, m.offset() or 0), max_batch_size=size, max_batch_wait_s=wait_s,
    )  # fmt: skip
    recorder.runtime = runtime
    return runtime


def _run_in_thread(runtime: StreamRuntime, errors: list[BaseException]) -> threading.Thread:
    def target() -> None:
        try:
            runtime.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.mark.kafka
def test_batches_close_by_size_then_by_time_and_offsets_are_committed_only_after_processing(kafka_broker) -> None:
    bootstrap, group = kafka_broker.bootstrap, f"g-{uuid.uuid4().hex[:6]}"
    topic = _topic(bootstrap)
    _produce(bootstrap, topic, 20)
    recorder = Recorder(stop_after=25)
    recorder.committed_probe = lambda: _committed(bootstrap, group, topic)
    errors: list[BaseException] = []
    thread = _run_in_thread(_runtime(bootstrap, group, topic, recorder, size=10, wait_s=1.0), errors)
    deadline = time.monotonic() + 30
    while len(recorder.batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [len(b) for b in recorder.batches] == [10, 10], "full batches go at once"
    produced_at = time.monotonic()
    _produce(bootstrap, topic, 5)
    thread.join(60)
    assert not thread.is_alive() and not errors, errors
    assert [len(b) for b in recorder.batches] == [10, 10, 5]
    assert recorder.batch_times[2] - produced_at >= 0.8, "the last 5 waited for the batch's time"
    # While each batch was processed, nothing of it was committed yet.
    for batch, committed in zip(recorder.batches, recorder.committed_during, strict=True):
        for partition, offset in batch:
            assert committed[partition] <= offset, (batch, committed)
    assert _committed(bootstrap, group, topic) == {0: 13, 1: 12}


@pytest.mark.kafka
def test_a_batch_that_cannot_be_processed_stops_the_runtime_with_nothing_more_committed(kafka_broker) -> None:
    bootstrap, group = kafka_broker.bootstrap, f"g-{uuid.uuid4().hex[:6]}"
    topic = _topic(bootstrap)
    _produce(bootstrap, topic, 30)
    recorder = Recorder(stop_after=10_000, fail_on=frozenset({2}))
    errors: list[BaseException] = []
    thread = _run_in_thread(_runtime(bootstrap, group, topic, recorder, size=10, wait_s=5.0), errors)
    thread.join(60)
    assert not thread.is_alive(), "the runtime stopped by itself"
    assert len(errors) == 1 and isinstance(errors[0], BatchFailed) and isinstance(errors[0].__cause__, ValueError)
    assert len(recorder.batches) == 2, "nothing processed after the failed batch"
    first = next_offsets([_Off(p, o) for p, o in recorder.batches[0]])
    assert _committed(bootstrap, group, topic) == {p: first.get(("t", p), -1001) for p in (0, 1)}
    # The group's next member starts at the failed batch.
    again = Recorder(stop_after=20)
    _runtime(bootstrap, group, topic, again, size=10, wait_s=0.5).run()
    everything = {(p, o) for p in (0, 1) for o in range(15)}
    assert {r for b in again.batches for r in b} == everything - set(recorder.batches[0])


@dataclass
class _Off:
    p: int
    o: int

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


@pytest.mark.kafka
def test_a_rebalance_closes_the_assignments_strategy_and_builds_one_for_what_is_still_held(kafka_broker) -> None:
    bootstrap, group = kafka_broker.bootstrap, f"g-{uuid.uuid4().hex[:6]}"
    topic = _topic(bootstrap)
    first, second = Recorder(stop_after=10_000), Recorder(stop_after=10_000)
    errors: list[BaseException] = []
    one = _runtime(bootstrap, group, topic, first, size=10, wait_s=0.2)
    threads = [_run_in_thread(one, errors)]
    deadline = time.monotonic() + 30
    while not first.assignments and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.assignments == [frozenset({(topic, 0), (topic, 1)})]
    two = _runtime(bootstrap, group, topic, second, size=10, wait_s=0.2)
    threads.append(_run_in_thread(two, errors))
    deadline = time.monotonic() + 30
    while not (second.assignments and len(one.assigned) == 1) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert first.closed[0] == frozenset({(topic, 0), (topic, 1)}), "the whole assignment's state is forgotten"
        assert first.assignments[-1] | second.assignments[-1] == {(topic, 0), (topic, 1)}
        assert len(first.assignments[-1]) == len(second.assignments[-1]) == 1
        _produce(bootstrap, topic, 4)
        deadline = time.monotonic() + 20
        while (len(first.batches) < 1 or len(second.batches) < 1) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {p for b in first.batches for p, _ in b} == {p for _, p in first.assignments[-1]}
        assert {p for b in second.batches for p, _ in b} == {p for _, p in second.assignments[-1]}
    finally:
        one.stop()
        two.stop()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    assert first.closed[-1] == first.assignments[-1], "stopping closes the last assignment too"


@pytest.mark.kafka
def test_with_collect_garbage_the_collector_runs_between_batches_and_fully_even_when_idle(
    kafka_broker, monkeypatch
) -> None:
    import gc

    from ecrm_schemas import consumer_runtime

    monkeypatch.setattr(consumer_runtime, "FULL_COLLECTION_INTERVAL_S", 0.2)
    bootstrap, group = kafka_broker.bootstrap, f"g-{uuid.uuid4().hex[:6]}"
    topic = _topic(bootstrap)
    _produce(bootstrap, topic, 4)
    enabled_during: list[bool] = []
    recorder = Recorder(stop_after=10**6)
    recorder.committed_probe = lambda: enabled_during.append(gc.isenabled()) or {}
    settings = KafkaSettings(kafka_bootstrap_servers=bootstrap, kafka_session_timeout_ms=6000)
    runtime: StreamRuntime[tuple[int, int]] = StreamRuntime(
        settings.kafka_consumer_config(group), [topic], recorder, lambda m: (m.partition() or 0, m.offset() or 0),
        max_batch_size=4, max_batch_wait_s=0.1, collect_garbage=True,
    )  # fmt: skip
    errors: list[BaseException] = []
    full_before = gc.get_stats()[2]["collections"]
    thread = _run_in_thread(runtime, errors)
    deadline = time.monotonic() + 30
    while not recorder.batches and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # idle: nothing more on the topic
    full_idle = gc.get_stats()[2]["collections"] - full_before
    runtime.stop()
    thread.join(30)
    assert not errors, errors
    assert enabled_during == [False], "no automatic collection during a batch"
    assert full_idle >= 2, "the old generation is collected while idle too"
    assert gc.isenabled(), "the collector is given back when the runtime ends"
