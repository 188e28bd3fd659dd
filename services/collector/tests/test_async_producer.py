"""The collector's producer on the real broker: every request's future settles, success or failure."""

import asyncio

import pytest

from ecrm_collector.producer import AsyncProducer, DeliveryFailed
from ecrm_schemas.topics import EVENTS

pytestmark = pytest.mark.kafka


async def test_concurrent_requests_each_settle_once_their_records_are_acknowledged(kafka_broker) -> None:
    """One broker answer acknowledges many requests: the loop is woken for all of them together."""
    producer = AsyncProducer({"bootstrap.servers": kafka_broker.bootstrap, "linger.ms": 20})
    try:
        records = [[(EVENTS.name, f"k{n}".encode(), f'{{"n":{n},"i":{i}}}'.encode()) for i in range(5)]
                   for n in range(40)]  # fmt: skip
        futures = [producer.produce_all(batch) for batch in records]
        await asyncio.wait_for(asyncio.gather(*futures), 15)
        assert all(f.done() and f.exception() is None for f in futures)
        too_large = producer.produce_all([(EVENTS.name, b"k", b"x" * 2_000_000)])  # over message.max.bytes
        with pytest.raises(DeliveryFailed):
            await asyncio.wait_for(too_large, 15)
    finally:
        assert producer.close(10) == 0
