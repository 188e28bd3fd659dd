"""One loyalty balance everywhere (issue 16, symptom 17): the interaction service's ledger owns
it; the aggregator folds the ``Loyalty Points Awarded`` events the ledger publishes into
``computed.loyalty_points`` / ``computed.loyalty_tier``. So a segment on the profile's loyalty
(ClickHouse) and a rule on the ledger's (``loyalty.points``) select the same customers for
the same history: purchases, refunds, engagement points and rule points alike."""

from datetime import UTC, datetime, timedelta

import pytest
from aggregator_factories import event, record

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_aggregator.pipeline import plan_batch
from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import loyalty as loyalty_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.profile import ProfileChanged
from ecrm_schemas.segments import SegmentDefinition

pytestmark = pytest.mark.clickhouse

THRESHOLD = 150
LOYAL = SegmentDefinition.model_validate(
    {
        "id": "loyal",
        "name": "Loyal",
        "condition": {"kind": "trait", "trait": "computed.loyalty_points", "op": "gte", "value": THRESHOLD},
    }
)
LOYAL_RULE = RuleSpec.model_validate(
    {
        "id": "loyal-thanks",
        "name": "Thank customers who reach 150 points",
        "trigger": {"kind": "trait", "trait": "loyalty.points", "above": THRESHOLD - 1},
        "actions": [{"kind": "notify", "emails": ["crm@shop.example.com"]}],
    }
)
BONUS_RULE = RuleSpec.model_validate(
    {
        "id": "birthday-bonus",
        "name": "Birthday bonus",
        "trigger": {"kind": "event", "event": "Birthday"},
        "actions": [{"kind": "points", "points": 100, "reason": "birthday"}],
    }
)


@pytest.fixture
def clickhouse(clickhouse_server, clickhouse_database):
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    migrate_clickhouse(client, clickhouse_database)
    yield ClickHouseStore(client, clickhouse_database)
    client.command(f"DROP DATABASE IF EXISTS {clickhouse_database}")
    client.close()


def _ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def _histories() -> list[dict]:
    """Four customers; revenue alone would put only cem in the segment."""

    def order(customer: str, order_id: str, total: int, minutes: float) -> dict:
        properties = {"order_id": order_id, "total": total}
        return event(
            customer=customer, event="Order Completed", ts=_ago(minutes), messageId=order_id, properties=properties
        )

    nps = {"survey_id": "s", "score": 9}
    return [
        order("ann", "a1", 140, 50),  # 140 for the order, 20 for the NPS answer: 160
        event(customer="ann", event="NPS Answered", ts=_ago(45), messageId="ann-nps", properties=nps),
        order("bob", "b1", 200, 50),  # 200, then 100 refunded: 100
        event(
            customer="bob",
            event="Order Refunded",
            ts=_ago(40),
            messageId="bob-refund",
            properties={"order_id": "b1", "total": 100},
        ),
        order("cem", "c1", 300, 50),  # 300
        order("dan", "d1", 60, 50),  # 60, and 100 from a rule: 160
        event(customer="dan", event="Birthday", ts=_ago(40), messageId="dan-birthday", properties={}),
    ]


async def test_a_segment_and_a_rule_on_loyalty_select_the_same_customers(clickhouse, tmp_path) -> None:
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_quiet_hours="")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    program = LoyaltyProgram()
    store.write(rule_store.set_loyalty_program, program, "test")
    store.write(rule_store.upsert_rules, [], [LOYAL_RULE, BONUS_RULE])
    rules, _ = store.read(rule_store.enabled_rules)
    intake = IntakeStep(store, "s")
    dispatcher = Dispatcher(settings, store, producer=None)

    registry = SegmentRegistry()
    registry.put(LOYAL)
    writer = BatchWriter(clickhouse, None, 0.5, registry, traits_refresh_s=3600)
    members: set[str] = set()
    offset = 0

    def aggregate(bodies: list[dict]) -> list[ProfileChanged]:
        nonlocal offset
        records = [record(body, offset + i) for i, body in enumerate(bodies)]
        offset += len(records)
        result = writer.store_batch(plan_batch(records))
        for change in result.membership.events:
            (members.add if change.type == "segment.entered" else members.discard)(change.customer_id)
        clickhouse.insert_membership(result.membership, f"t{offset}")
        return [ProfileChanged.model_validate_json(c.encode()) for c in result.changes]

    now = datetime.now(UTC)
    changes = aggregate(_histories())
    with store.sessions.begin() as session:
        for change in changes:
            intake.profile_change(session, change, rules, program, now, Intake())
    await dispatcher.tick(now)  # the birthday points: a rule's points go through the ledger too
    published = dispatcher.outbox_events(now)
    assert {e["event"] for e in published} == {"Loyalty Points Awarded"}
    aggregate(published)  # what the dispatcher publishes comes back through the aggregator

    ledger = {c: store.read(loyalty_store.ledger, c)[0] for c in ("ann", "bob", "cem", "dan")}
    assert ledger == {"ann": 160, "bob": 100, "cem": 300, "dan": 160}
    profiles = clickhouse.load_profiles(list(ledger))
    assert {c: p.computed.loyalty_points for c, p in profiles.items()} == ledger, "one balance everywhere"
    assert {c: p.computed.loyalty_tier for c, p in profiles.items()} == {c: "bronze" for c in ledger}

    await dispatcher.tick(now + timedelta(seconds=1))
    fired = {a.customer_id for a in store.read(action_store.recent, kind="notify")}
    assert fired == members == {"ann", "cem", "dan"}, "the rule and the segment select the same customers"
