"""The ceilings the suite holds the stages against that the older benchmarks lacked: the
collector's validation alone, a bare consume loop and a bare ClickHouse insert loop, each on
the same payloads as the stage they bound."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.aggregator_bench import DATABASE, event_row
from bench.collector_bench import MAX_EVENT_BYTES
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.rows import EVENT_COLUMNS
from ecrm_collector.ingest import plan_ingest
from ecrm_embedded.testing import ClickHouseServer
from ecrm_schemas.topics import EVENTS


def validation_alone(batch_bodies: list[bytes]) -> dict[str, float]:
    """The collector's pure step (parse, stamp, validate, encode) over the batch bodies, on one core."""
    jobs = []
    for body in batch_bodies:
        decoded = orjson.loads(body)
        defaults = {k: decoded[k] for k in ("context", "integrations", "sentAt") if k in decoded}
        jobs.append((decoded["batch"], defaults, len(body)))
    received_at = datetime.now(UTC)

    def plan_all() -> int:
        events = 0
        for batch, defaults, size in jobs:
            plan_ingest(batch, received_at=received_at, source="collector:bench", max_event_bytes=MAX_EVENT_BYTES,
                        batch_defaults=defaults, request_bytes=size)  # fmt: skip
            events += len(batch)
        return events

    plan_all()  # warm: pydantic's validators, imports
    started = time.perf_counter()
    events = plan_all()
    elapsed = time.perf_counter() - started
    return {"events": events, "seconds": round(elapsed, 3), "events_per_s": round(events / elapsed)}


def raw_consume(bootstrap: str, total: int, batch_size: int) -> dict[str, float]:
    """A confluent-kafka consumer reading ``total`` records and touching each value: the read side alone."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw-consume", "enable.auto.commit": False})
    consumer.assign([TopicPartition(EVENTS.name, p, OFFSET_BEGINNING) for p in range(EVENTS.partitions)])
    done, size, first_batch, started = 0, 0, 0, 0.0
    deadline = time.monotonic() + 300
    while done < total and time.monotonic() < deadline:
        for message in consumer.consume(batch_size, 1.0):
            if message.error() is None:
                size += len(message.value() or b"")
                done += 1
        if done and not first_batch:  # timed as the aggregator is: from the end of the first batch
            first_batch, started = done, time.perf_counter()
    elapsed = time.perf_counter() - started
    consumer.close()
    measured = done - first_batch
    return {"events": measured, "seconds": round(elapsed, 3), "events_per_s": round(measured / elapsed),
            "mean_record_bytes": round(size / max(1, done), 1)}  # fmt: skip


def raw_insert(clickhouse: ClickHouseServer, values: list[bytes], batch_size: int) -> dict[str, float]:
    """clickhouse-connect inserting the rows, prepared beforehand, ``batch_size`` per insert: the write side alone."""
    client = clickhouse.client()
    migrate(client, DATABASE)
    rows = [event_row(value, 0, offset) for offset, value in enumerate(values)]
    latencies = []
    started = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        began = time.perf_counter()
        client.insert(f"{DATABASE}.events", rows[start : start + batch_size], column_names=list(EVENT_COLUMNS))
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"events": len(rows), "seconds": round(elapsed, 3), "events_per_s": round(len(rows) / elapsed),
            "inserts": len(latencies), "insert_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
            "insert_max_ms": round(latencies[-1] * 1000, 1)}  # fmt: skip
