import pytest

from ecrm_embedded.testing import read_topic
from ecrm_schemas.kafka_producer import DeliveryError, ReliableProducer
from ecrm_schemas.topics import EVENTS_DLQ

pytestmark = pytest.mark.kafka


def test_delivered_records_pass_and_failures_raise(kafka_broker) -> None:
    producer = ReliableProducer({"bootstrap.servers": kafka_broker.bootstrap})
    producer.produce(EVENTS_DLQ.name, b"one", key=b"k")
    producer.flush_or_raise(10)
    assert read_topic(kafka_broker.bootstrap, EVENTS_DLQ.name, expect=1) == [(b"k", b"one")]

    # librdkafka's flush() returns 0 here although the record failed: the wrapper must raise.
    unreachable = ReliableProducer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 500})
    unreachable.produce(EVENTS_DLQ.name, b"lost")
    with pytest.raises(DeliveryError):
        unreachable.flush_or_raise(5)
