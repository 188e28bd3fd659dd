import time

import pytest
from pydantic import ValidationError

from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.suppressions import Suppression, SuppressionList, follow_suppressions, identity_digest
from ecrm_schemas.topics import SUPPRESSIONS


def test_the_list_holds_digests_that_do_not_reveal_the_identity() -> None:
    digest = identity_digest("alice@example.com")
    assert len(digest) == 64 and "alice" not in digest
    assert digest == identity_digest("alice@example.com") != identity_digest("alice@example.org")
    record = Suppression(identity_digest=digest)
    assert b"alice" not in record.encode()
    assert Suppression.model_validate_json(record.encode()).identity_digest == digest
    with pytest.raises(ValidationError):
        Suppression(identity_digest="alice@example.com")


def test_matching_identities_and_raw_events() -> None:
    suppressions = SuppressionList()
    assert not suppressions.matches("u1") and not suppressions.matches_raw({"userId": "u1"})
    suppressions.suppress(["u1"])
    suppressions.add(identity_digest("a1"))
    assert len(suppressions) == 2
    assert suppressions.matches(None, "", "u1") and suppressions.matches("a1")
    assert not suppressions.matches("u2", None)
    assert suppressions.matches_raw({"userId": "u2", "anonymousId": "a1"})
    assert suppressions.matches_raw({"type": "alias", "previousId": "u1", "userId": "u9"})
    assert not suppressions.matches_raw({"userId": 1, "anonymousId": ["u1"]})
    assert not suppressions.matches_raw(["u1"])


@pytest.mark.kafka
def test_a_follower_reads_the_whole_list_then_keeps_up(fresh_kafka_broker) -> None:
    config = {"bootstrap.servers": fresh_kafka_broker.bootstrap}
    producer = ReliableProducer(config)

    def publish(identity: str) -> None:
        digest = identity_digest(identity)
        producer.produce(SUPPRESSIONS.name, Suppression(identity_digest=digest).encode(), key=digest.encode())
        producer.flush_or_raise(10)

    publish("early-1")
    publish("early-2")
    suppressions, follower = follow_suppressions(config)
    try:
        assert follower.caught_up.wait(30)
        assert suppressions.matches("early-1") and suppressions.matches("early-2"), "read before caught up"
        publish("later")
        deadline = time.monotonic() + 10
        while not suppressions.matches("later") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert suppressions.matches("later") and not suppressions.matches("someone-else")
    finally:
        follower.stop()
        follower.join(10)
    assert not follower.is_alive()
