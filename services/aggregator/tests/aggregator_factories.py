"""Test data for the aggregator: records as they would come off Kafka."""

from __future__ import annotations

from typing import Any

import orjson

from ecrm_aggregator.decode import SourceRecord


def event(type_: str = "track", *, customer: str = "u1", ts: str = "2026-11-20T10:00:00Z", **fields: Any) -> dict:
    body = {
        "type": type_,
        "messageId": fields.pop("messageId", f"m-{customer}-{ts}-{type_}-{fields.get('event', '')}"),
        "userId": customer,
        "timestamp": ts,
        "receivedAt": ts,
    }
    return body | fields


def record(body: Any, offset: int, partition: int = 0) -> SourceRecord:
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    return SourceRecord(partition=partition, offset=offset, key=b"k", value=value)
