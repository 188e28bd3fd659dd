"""Journeys through the real broker: a segment change that overtakes the profile change that
caused it still renders the profile as of that change (issue 16, symptom 8)."""

import asyncio
import email
from datetime import UTC, datetime
from decimal import Decimal
from email import policy as email_policy

import pytest
from confluent_kafka import Producer
from interaction_factories import change, rule, trigger

from ecrm_interaction.consumer.worker import InteractionWorker
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.segments import SegmentMembershipChanged
from ecrm_schemas.topics import PROFILE_CHANGES, SEGMENT_MEMBERSHIP

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]


async def _until(probe, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if probe():
            return
        await asyncio.sleep(0.1)


async def test_a_vip_email_renders_the_order_that_made_the_customer_vip(fresh_kafka_broker, smtp_sink, tmp_path):
    settings = InteractionSettings(
        kafka_bootstrap_servers=fresh_kafka_broker.bootstrap, kafka_session_timeout_ms=6000,
        database_url=f"sqlite:///{tmp_path}/interaction.db", smtp_url=smtp_sink.url,
        interaction_group_id="journeys-test", interaction_quiet_hours="", interaction_dispatch_interval_s=0.1,
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    store.write(
        rule_store.upsert_rules,
        [TemplateSpec(id="vip", subject="You are now VIP", text="Revenue {{ profile.revenue }}")],
        [rule(id="vip", trigger={"kind": "segment", "segment": "vip"}, actions=[{"kind": "email", "template": "vip"}])],
    )
    now = datetime.now(UTC)
    first = change(trigger("identify", message_id="m-1", at=now), customer="ada", version=1)
    order = trigger("track", "Order Completed", message_id="m-2", at=now, total=650)
    second = change(order, customer="ada", version=2, changed=["orders", "revenue"])
    second = second.model_copy(update={"profile": second.profile.model_copy(update={"revenue": Decimal(650)})})
    entered = SegmentMembershipChanged(
        event_id="e-1", type="segment.entered", segment_id="vip", segment_name="VIP", customer_id="ada", at=now,
        trigger="event", trigger_message_ids=["m-2"], reason="revenue ≥ 500", profile_version=2,
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap})
    worker = InteractionWorker(settings, store)
    dispatcher = Dispatcher(settings, store, None)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stopping)), asyncio.create_task(dispatcher.run(stopping))]
    try:
        producer.produce(PROFILE_CHANGES.name, key=b"ada", value=first.encode())
        producer.flush(10)
        await _until(lambda: store.read(customer_store.customer, "ada") is not None)
        # The segment change overtakes the profile change of the order that caused it.
        producer.produce(SEGMENT_MEMBERSHIP.name, key=b"ada", value=entered.encode())
        producer.flush(10)
        await _until(lambda: store.read(action_store.recent, customer_id="ada") != [])
        await asyncio.sleep(1.0)
        producer.produce(PROFILE_CHANGES.name, key=b"ada", value=second.encode())
        producer.flush(10)
        await _until(lambda: len(smtp_sink.messages()) >= 1)
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
    [mail] = [email.message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in smtp_sink.messages()]
    assert mail["Subject"] == "You are now VIP"
    assert mail.get_body(("plain",)).get_content().strip() == "Revenue 650.00"  # amounts render with 2 decimals
