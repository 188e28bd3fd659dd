"""The interaction worker against the real broker, a real SMTP server and SQLite."""

import asyncio

import orjson
import pytest
from confluent_kafka import Producer
from interaction_factories import change, trigger

from ecrm_embedded.testing import read_topic
from ecrm_interaction.rule_matching import RuleSpec, TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.store import Store, make_engine, migrate
from ecrm_interaction.worker import InteractionWorker
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.topics import EVENTS, PROFILE_CHANGES, PROFILE_CHANGES_DLQ

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]


async def test_redelivered_change_sends_once_and_garbage_is_dead_lettered(kafka_broker, smtp_sink, tmp_path):
    settings = InteractionSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        kafka_session_timeout_ms=6000,
        database_url=f"sqlite:///{tmp_path}/interaction.db",
        smtp_url=smtp_sink.url,
        interaction_group_id="interaction-test",
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    store.upsert_rules(
        [TemplateSpec(id="welcome", subject="Welcome {{ traits.firstName }}", text="Hi {{ traits.firstName }}")],
        [
            RuleSpec(
                id="welcome", name="Welcome", trigger_event="identify", template_id="welcome", once_per_customer=True
            )
        ],
    )

    payload = change(trigger("identify", message_id="m-1"), firstName="Ada").encode()
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for value in (payload, b"not a profile change", payload):  # the change arrives twice
        producer.produce(PROFILE_CHANGES.name, key=b"u1", value=value)
    producer.flush(10)

    worker = InteractionWorker(settings, store)
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(stopping))
    try:
        for _ in range(120):
            if smtp_sink.messages() and store.sends(customer_id="u1")[0].status == "sent":
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.5)  # room for a wrong second send
    finally:
        stopping.set()
        await task

    [mail] = smtp_sink.messages()
    assert b"Subject: Welcome Ada" in mail.read_bytes()
    [send] = store.sends(customer_id="u1")
    assert (send.status, send.rule_id, send.trigger_message_id) == ("sent", "welcome", "m-1")

    [(_, letter)] = read_topic(kafka_broker.bootstrap, PROFILE_CHANGES_DLQ.name, expect=1)
    assert DeadLetter.model_validate_json(letter).source == "interaction"
    [(key, sent_event)] = read_topic(kafka_broker.bootstrap, EVENTS.name, expect=1)
    event = orjson.loads(sent_event)
    assert (key, event["event"], event["properties"]["email_id"]) == (b"u1", "Email Sent", send.id)
