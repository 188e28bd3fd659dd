"""The interaction worker and dispatcher against the real broker, a real SMTP server and SQLite."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from interaction_factories import change, rule, trigger

from ecrm_embedded.testing import read_records, read_topic
from ecrm_interaction.consumer.worker import InteractionWorker
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.cases import CaseChange, CaseOpening
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.email_tags import address_anonymous_id
from ecrm_schemas.own_events import EventOrigin, origin_of_headers
from ecrm_schemas.segments import SegmentMembershipChanged
from ecrm_schemas.topics import EVENTS, PROFILE_CHANGES, PROFILE_CHANGES_DLQ, SEGMENT_MEMBERSHIP

pytestmark = [pytest.mark.kafka, pytest.mark.smtp]


async def test_changes_become_one_email_each_garbage_is_dead_lettered_and_decisions_are_reported(
    fresh_kafka_broker, smtp_sink, tmp_path
):
    kafka_broker = fresh_kafka_broker
    settings = InteractionSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap, kafka_session_timeout_ms=6000,
        database_url=f"sqlite:///{tmp_path}/interaction.db", smtp_url=smtp_sink.url,
        interaction_group_id="interaction-test", interaction_quiet_hours="", interaction_dispatch_interval_s=0.2,
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    store.write(rule_store.upsert_rules,
        [TemplateSpec(id="welcome", subject="Welcome {{ traits.firstName }}", text="Hi {{ traits.firstName }}"),
         TemplateSpec(id="vip", subject="You are a VIP", text="Thanks")],
        [rule(id="welcome", once_per_customer=True, actions=[{"kind": "email", "template": "welcome"}]),
         rule(id="vip", category="transactional", trigger={"kind": "segment", "segment": "vip"},
              actions=[{"kind": "email", "template": "vip"}])],
    )  # fmt: skip
    # Triggered now: an event older than max_event_age (1 day by default) fires nothing.
    payload = change(trigger("identify", message_id="m-1", at=datetime.now(UTC)), firstName="Ada").encode()
    entered = SegmentMembershipChanged(
        event_id="e-1",
        type="segment.entered",
        segment_id="vip",
        segment_name="VIP",
        customer_id="u1",
        at=datetime.now(UTC),
        trigger="event",
        reason="revenue ≥ 500",
    )
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for value in (payload, b"not a profile change", payload):  # the change arrives twice
        producer.produce(PROFILE_CHANGES.name, key=b"u1", value=value)
    producer.produce(SEGMENT_MEMBERSHIP.name, key=b"u1", value=entered.encode())
    producer.flush(10)

    worker = InteractionWorker(settings, store)
    dispatcher = Dispatcher(settings, store, worker.producer)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stopping)), asyncio.create_task(dispatcher.run(stopping))]
    try:
        for _ in range(120):
            if len(smtp_sink.messages()) >= 2 and len(store.read(action_store.recent, status="sent")) == 2:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.5)  # room for a wrong second send
    finally:
        stopping.set()
        await asyncio.gather(*tasks)

    subjects = sorted(p.read_bytes().split(b"Subject: ")[1].split(b"\r\n")[0] for p in smtp_sink.messages())
    assert subjects == [b"Welcome Ada", b"You are a VIP"]
    welcome = store.read(action_store.recent, customer_id="u1", kind="email", status="sent")
    assert {a.rule_id for a in welcome} == {"welcome", "vip"}
    assert [s.segment_id for s in store.read(customer_store.segments, "u1")] == ["vip"]

    [(_, letter)] = read_topic(kafka_broker.bootstrap, PROFILE_CHANGES_DLQ.name, expect=1)
    assert DeadLetter.model_validate_json(letter).source == "interaction"
    records = read_records(kafka_broker.bootstrap, EVENTS.name, expect=4)
    assert all(origin_of_headers(headers) is EventOrigin.INTERACTION for _, _, headers in records)
    published = [orjson.loads(v) for _, v, _ in records]
    reported = [e for e in published if e["type"] == "track"]
    assert sorted((e["event"], e["userId"]) for e in reported) == [("Email Sent", "u1"), ("Email Sent", "u1")]
    # each send also links the address's id to the user, for ESP events that name only the address
    aliases = {(e["previousId"], e["userId"]) for e in published if e["type"] == "alias"}
    assert aliases == {(address_anonymous_id("ada@example.com"), "u1")}
    assert {e["properties"]["email_id"] for e in reported} == {a.id for a in welcome}
    assert all(e["messageId"].startswith("ecrm-interaction-") for e in reported)


async def test_segments_defined_through_the_api_reach_the_definitions_topic(kafka_broker, tmp_path) -> None:
    import httpx

    from ecrm_interaction.api.app import create_app
    from ecrm_schemas.segments import SegmentDefinition
    from ecrm_schemas.topics import SEGMENT_DEFINITIONS

    settings = InteractionSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap,
        interaction_api_token="t0ken",
        database_url=f"sqlite:///{tmp_path}/i.db",
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    worker = InteractionWorker(settings, store)
    app = create_app(settings, store, None, Dispatcher(settings, store, worker.producer))
    auth = {"Authorization": "Bearer t0ken"}
    definition = {
        "id": "big",
        "name": "Big spenders",
        "condition": {"kind": "trait", "trait": "revenue", "op": "gte", "value": 500},
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as http:
        assert (await http.put("/v1/segments/big", json=definition, headers=auth)).status_code == 200
        assert (await http.delete("/v1/segments/big", headers=auth)).status_code == 204
    records = read_topic(kafka_broker.bootstrap, SEGMENT_DEFINITIONS.name, expect=2)
    assert SegmentDefinition.model_validate_json(records[0][1]).name == "Big spenders"
    assert records[1] == (b"big", b"")  # the tombstone deletes it
    assert [e.action for e in store.read(audit_log.recent)][:2] == ["delete", "upsert"]


async def test_case_and_loyalty_events_of_the_outbox_reach_the_events_topic_once(fresh_kafka_broker, tmp_path) -> None:
    from datetime import timedelta

    from ecrm_interaction.consumer.intake import Intake, IntakeStep
    from ecrm_interaction.engine.rules import LoyaltyProgram
    from ecrm_schemas.kafka_producer import ReliableProducer

    settings = InteractionSettings(
        kafka_bootstrap_servers=fresh_kafka_broker.bootstrap, database_url=f"sqlite:///{tmp_path}/i.db"
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    now = datetime.now(UTC)
    with store.sessions.begin() as session:
        order = trigger("track", "Order Completed", message_id="o1", order_id="o1", total=120)
        IntakeStep(store, "s").profile_change(session, change(order), [], LoyaltyProgram(), now, Intake())
        opening = CaseOpening(customer_id="u1", subject="Parcel lost", priority="high", sla=timedelta(hours=4))
        case_id = case_store.open_case(session, opening, now)
    store.write(case_store.update_case, case_id, CaseChange(status="resolved"), "agent-1", now)
    dispatcher = Dispatcher(settings, store, ReliableProducer(settings.kafka_client_config()))
    dispatcher.publish()
    assert _unpublished_events(store) == []
    dispatcher.publish()  # nothing left to publish
    reported = [orjson.loads(v) for _, v in read_topic(fresh_kafka_broker.bootstrap, EVENTS.name, expect=3)]
    assert sorted((e["event"], e["userId"]) for e in reported) == [
        ("Case Opened", "u1"), ("Case Resolved", "u1"), ("Loyalty Points Awarded", "u1")]  # fmt: skip
    [loyalty] = [e["properties"] for e in reported if e["event"] == "Loyalty Points Awarded"]
    assert (loyalty["points"], loyalty["balance"], loyalty["tier"], loyalty["reason"]) == (
        120,
        120,
        "bronze",
        "order o1",
    )
    assert _unpublished_events(store) == []


async def test_segments_are_listed_as_the_topic_holds_them_and_a_typo_is_refused_before_publishing(
    fresh_kafka_broker, tmp_path
) -> None:
    """Issue 16 #21: ``orderz`` is refused with 422 naming the field and the rule, nothing is
    published; ``GET /v1/segments`` shows what the definitions topic holds, whoever wrote it."""
    import httpx

    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.consumer.segment_definitions import follow_segment_definitions
    from ecrm_schemas.topics import SEGMENT_DEFINITIONS

    settings = InteractionSettings(
        kafka_bootstrap_servers=fresh_kafka_broker.bootstrap,
        interaction_api_token="t0ken",
        database_url=f"sqlite:///{tmp_path}/i.db",
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    worker = InteractionWorker(settings, store)
    by_cli = {
        "id": "loyal",
        "name": "Loyal",
        "condition": {"kind": "trait", "trait": "orders", "op": "gte", "value": 5},
    }
    broken = {"id": "broken", "name": "Broken", "condition": {"kind": "trait", "trait": "nope", "op": "exists"}}
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap})
    for raw in (by_cli, broken):
        producer.produce(SEGMENT_DEFINITIONS.name, key=raw["id"].encode(), value=orjson.dumps(raw))
    producer.flush(10)
    definitions, follower = follow_segment_definitions(settings.kafka_client_config())
    try:
        assert follower.caught_up.wait(30)
        app = create_app(settings, store, None, Dispatcher(settings, store, worker.producer),
                         segment_definitions=definitions)  # fmt: skip
        auth = {"Authorization": "Bearer t0ken"}
        typo = {"id": "vip", "name": "VIP", "condition": {"kind": "trait", "trait": "orderz", "op": "gte", "value": 3}}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as http:
            refused = await http.put("/v1/segments/vip", json=typo, headers=auth)
            assert refused.status_code == 422
            [error] = refused.json()["error"]["errors"]
            assert (error["field"], error["rule"]) == ("condition.trait.trait", "unknown_profile_field")
            assert "orderz" in error["message"] and "did you mean 'orders'" in error["message"]
            listed = (await http.get("/v1/segments", headers=auth)).json()
            assert [(s["id"], s["summary"]) for s in listed] == [("loyal", "orders ≥ 5")]

            fixed = typo | {"condition": {"kind": "trait", "trait": "orders", "op": "gte", "value": 3}}
            assert (await http.put("/v1/segments/vip", json=fixed, headers=auth)).status_code == 200
            shown = await http.get("/v1/segments/vip", headers=auth)
            assert shown.status_code == 200 and shown.json()["condition"]["trait"] == "orders"
            assert (await http.delete("/v1/segments/vip", headers=auth)).status_code == 204
            assert (await http.get("/v1/segments/vip", headers=auth)).status_code == 404
        records = read_topic(fresh_kafka_broker.bootstrap, SEGMENT_DEFINITIONS.name, expect=4)
        assert [k for k, _ in records] == [b"loyal", b"broken", b"vip", b"vip"]  # the typo never reached it
    finally:
        follower.stop()


def _unpublished_events(store: Store) -> list[Any]:
    from ecrm_interaction.storage import outbox

    with store.sessions() as session:
        return outbox.unpublished_events(session)


async def test_a_batch_that_fails_for_a_bug_stops_the_consumer_uncommitted_and_is_not_swallowed(
    fresh_kafka_broker, tmp_path
) -> None:
    """Database and broker errors are retried on the same batch; any other failure of a batch is
    fatal (the service ends, :meth:`InteractionWorker.fatal`) instead of rebuilding the consumer."""
    settings = InteractionSettings(
        kafka_bootstrap_servers=fresh_kafka_broker.bootstrap, kafka_session_timeout_ms=6000,
        database_url=f"sqlite:///{tmp_path}/interaction.db", interaction_group_id="interaction-fatal",
        interaction_batch_wait_s=0.1,
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    migrate(engine)
    worker = InteractionWorker(settings, Store(engine))
    taken: list[int] = []

    def take(records):  # a bug in the intake, on the first batch
        taken.append(len(records))
        raise KeyError("a bug")

    worker.take = take  # type: ignore[method-assign]
    fatal: list[BaseException] = []
    worker.fatal = fatal.append  # type: ignore[method-assign]
    producer = Producer({"bootstrap.servers": fresh_kafka_broker.bootstrap})
    payload = change(trigger("identify", message_id="m-f", at=datetime.now(UTC))).encode()
    producer.produce(PROFILE_CHANGES.name, key=b"u1", value=payload)
    producer.flush(10)

    stopping = asyncio.Event()
    await asyncio.wait_for(worker.run(stopping), 60)  # ends by itself: nobody set stopping

    assert taken == [1], "taken once: no retry of a bug, no rebuilt consumer taking it again"
    assert len(fatal) == 1 and isinstance(fatal[0].__cause__, KeyError), fatal
    assert not worker.ready
    probe = Consumer({"bootstrap.servers": fresh_kafka_broker.bootstrap, "group.id": "interaction-fatal"})
    committed = probe.committed([TopicPartition(PROFILE_CHANGES.name, p) for p in range(PROFILE_CHANGES.partitions)])
    probe.close()
    assert all(tp.offset < 0 for tp in committed), "nothing committed"
