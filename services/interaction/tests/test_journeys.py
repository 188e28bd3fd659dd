"""Journeys as marketers run them (issue 16): rules switched off while actions wait, a welcome
that waits for its address, merged visitors, history imports, and the skips the decision log
shows. The dispatcher runs against a real SMTP server on loopback and SQLite."""

from datetime import UTC, datetime, timedelta

import pytest
from interaction_factories import DispatchSetup, change, rule, trigger

from ecrm_interaction.consumer.intake import Intake
from ecrm_interaction.engine.rules import LoyaltyProgram, TemplateSpec
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.actions import DecisionFilter

pytestmark = pytest.mark.smtp
NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)
TEMPLATE = TemplateSpec(id="t", subject="Hi {{ traits.firstName }}", text="Revenue {{ profile.revenue }}")


class Journey(DispatchSetup):
    default_templates = (TEMPLATE,)


@pytest.fixture
def journey(tmp_path, smtp_sink):
    return Journey(tmp_path, smtp_sink)


CART = {
    "trigger": {"kind": "event", "event": "Product Added"},
    "wait": {"duration": "1h", "cancel_on": [{"event": "Order Completed"}]},
}


@pytest.mark.parametrize("switch_off", ["disable", "delete"])
async def test_a_rule_switched_off_while_actions_wait_sends_nothing_even_when_enabled_again(
    journey, switch_off
) -> None:
    journey.rules(rule(id="cart", **CART))
    journey.take(change(trigger("track", "Product Added", message_id="p1"), customer="a"))
    journey.take(change(trigger("track", "Product Added", message_id="p2"), customer="b"))
    if switch_off == "disable":
        journey.store.write(rule_store.set_enabled, "cart", False, "ada")
    else:
        journey.store.write(rule_store.delete_rule, "cart", "ada")
    reason = {"disable": "rule_disabled", "delete": "rule_deleted"}[switch_off]
    assert {(a.status, a.reason) for a in journey.decisions()} == {("cancelled", reason)}
    if switch_off == "disable":
        journey.store.write(rule_store.set_enabled, "cart", True, "ada")
    await journey.dispatcher.tick(NOON + timedelta(hours=2))
    assert journey.mails() == []
    assert {(a.status, a.reason) for a in journey.decisions()} == {("cancelled", reason)}


async def test_an_action_planned_while_its_rule_was_being_disabled_is_cancelled_when_due(journey) -> None:
    journey.rules(rule(id="cart", **CART))
    rules, _ = journey.store.read(rule_store.enabled_rules)  # the consumer read the rules before the switch
    journey.store.write(rule_store.set_enabled, "cart", False, "ada")
    with journey.store.sessions.begin() as session:
        journey.intake.profile_change(
            session, change(trigger("track", "Product Added", message_id="p1")), rules, LoyaltyProgram(), NOON, Intake()
        )
    await journey.dispatcher.tick(NOON + timedelta(hours=2))
    assert journey.mails() == []
    [action] = journey.decisions()
    assert (action.status, action.reason) == ("cancelled", "rule_disabled")


async def test_a_welcome_suppressed_for_want_of_an_address_goes_out_once_the_address_arrives(journey) -> None:
    journey.rules(rule(id="welcome", once_per_customer=True))
    journey.take(change(trigger(message_id="m1"), email=None, firstName="Ada"))
    await journey.dispatcher.tick(NOON)
    [suppressed] = journey.decisions()
    assert (suppressed.status, suppressed.reason) == ("suppressed", "no_email_address")
    assert journey.take(change(trigger(message_id="m2"), firstName="Ada", version=2)).planned == 1
    await journey.dispatcher.tick(NOON + timedelta(minutes=1))
    assert [m["To"] for m in journey.mails()] == ["ada@example.com"]
    assert journey.take(change(trigger(message_id="m3"), firstName="Ada", version=3)).planned == 0  # once


async def test_an_unsubscribed_customer_uses_up_a_once_per_customer_rule(journey) -> None:
    journey.rules(rule(id="welcome", once_per_customer=True))
    journey.take(change(trigger("track", "Unsubscribed", message_id="u0"), trigger(message_id="m1")))
    await journey.dispatcher.tick(NOON)
    assert [(a.status, a.reason) for a in journey.decisions()] == [("suppressed", "unsubscribed")]
    assert journey.take(change(trigger(message_id="m2"), version=2)).planned == 0


def _merged(c, into: str):
    profile = c.profile.model_copy(update={"user_id": None, "anonymous_id": c.customer_id, "merged_into": into})
    return c.model_copy(update={"profile": profile, "changed": ["merged_into"]})


async def test_an_anonymous_profile_merged_into_a_user_fires_nothing_for_the_anonymous_id(journey) -> None:
    journey.rules(
        rule(id="welcome"),
        rule(
            id="points",
            trigger={"kind": "event", "event": "Order Completed"},
            actions=[{"kind": "points", "points": 5}],
        ),
        rule(id="cart", **CART),
    )
    journey.take(change(trigger("track", "Product Added", message_id="p0"), customer="anon-1", email=None))
    identify = trigger(message_id="i1", at=NOON)
    order = trigger("track", "Order Completed", message_id="o1", at=NOON, total=650)
    journey.take(change(identify, order, customer="ada"))
    outcome = journey.take(_merged(change(identify, order, customer="anon-1", email=None, version=2), "ada"))
    assert outcome.planned == 0 and outcome.points == 0
    await journey.dispatcher.tick(NOON + timedelta(hours=2))
    by_customer = {(a.customer_id, a.rule_id, a.status, a.reason) for a in journey.decisions()}
    assert by_customer == {
        ("ada", "welcome", "sent", "allowed"),
        ("ada", "points", "done", "+5 points"),
        ("anon-1", "cart", "cancelled", "profile_merged"),  # nothing acts on the anonymous id
    }


def _segment_change(customer: str, at=NOON, event_id: str = "e1", **fields):
    from ecrm_schemas.segments import SegmentMembershipChanged

    return SegmentMembershipChanged(
        event_id=event_id, type="segment.entered", segment_id="vip", segment_name="VIP", customer_id=customer,
        at=at, trigger="event", reason="revenue ≥ 500", **fields,
    )  # fmt: skip


def test_a_segment_change_of_a_merged_anonymous_profile_fires_nothing(journey) -> None:
    journey.rules(rule(id="vip", trigger={"kind": "segment", "segment": "vip"}))
    journey.take(_merged(change(trigger(message_id="i1"), customer="anon-1", email=None), "ada"))
    outcome = Intake()
    with journey.store.sessions.begin() as session:
        journey.intake.segment_change(session, _segment_change("anon-1"), *rule_store.enabled_rules(session)[:1],
                                      LoyaltyProgram(), NOON, outcome)  # fmt: skip
    assert outcome.planned == 0 and journey.decisions() == []


THANKS = rule(id="thanks", trigger={"kind": "event", "event": "Order Completed"}, category="transactional")
DETRACTOR = rule(
    id="detractor",
    trigger={"kind": "event", "event": "NPS Answered", "where": {"score": {"lte": 6}}},
    actions=[{"kind": "case", "subject": "Detractor", "priority": "high"}],
)


def _imported(t):
    return t.model_copy(update={"backfill": True})


async def test_imported_history_builds_the_profile_and_fires_no_rule(journey) -> None:
    journey.rules(THANKS, DETRACTOR, rule(id="vip", trigger={"kind": "segment", "segment": "vip"}),
                  rule(id="cart", **CART))  # fmt: skip
    journey.take(change(trigger("track", "Product Added", message_id="p1", at=NOON), customer="ada"))
    orders = [_imported(trigger("track", "Order Completed", message_id=f"o{n}", at=NOON - timedelta(days=n), total=130))
              for n in range(1, 6)]  # fmt: skip
    nps = _imported(trigger("track", "NPS Answered", message_id="n1", at=NOON - timedelta(days=30), score=2))
    outcome = journey.take(change(*orders, nps, customer="ada", version=2))
    assert (outcome.planned, outcome.cancelled) == (0, 0)  # an imported past order cancels no live wait
    assert journey.store.read(customer_store.customer, "ada").profile_version == 2  # the profile is built
    segment = _segment_change("ada", backfill=True)
    with journey.store.sessions.begin() as session:
        journey.intake.segment_change(session, segment, rule_store.enabled_rules(session)[0], LoyaltyProgram(), NOON,
                                      outcome)  # fmt: skip
    assert outcome.planned == 0
    assert {(a.rule_id, a.status) for a in journey.decisions()} == {("cart", "waiting")}


def test_an_nps_answer_replaced_by_a_newer_one_opens_no_case(journey) -> None:
    journey.rules(DETRACTOR)
    earlier = trigger("track", "NPS Answered", message_id="n1", at=NOON - timedelta(hours=2), score=2)
    later = trigger("track", "NPS Answered", message_id="n2", at=NOON - timedelta(hours=1), score=9)
    replaced = change(earlier, later, customer="ada")
    replaced = replaced.model_copy(
        update={"profile": replaced.profile.model_copy(update={"nps_latest": 9, "nps_at": later.timestamp})}
    )
    assert journey.take(replaced).planned == 0
    [skip] = journey.store.read(action_store.decisions, DecisionFilter(status="skipped"))
    assert (skip.rule_id, skip.reason, skip.cause) == ("detractor", "superseded", "m:n1")
    latest = change(later.model_copy(update={"message_id": "n3", "properties": {"score": 3}}), customer="bob")
    latest = latest.model_copy(update={"profile": latest.profile.model_copy(update={"nps_at": later.timestamp})})
    assert journey.take(latest).planned == 1  # the latest answer still counts


def _cart_add_and_order(
    cart_at: datetime, order_at: datetime, *, order_listed_first: bool = False, backfill: bool = False, customer="bea"
):
    cart = trigger("track", "Product Added", message_id="p1", at=cart_at, product_id="p-trail")
    order = trigger("track", "Order Completed", message_id="o1", at=order_at, order_id="o1", total=89)
    if backfill:
        order = _imported(order)
    return change(*((order, cart) if order_listed_first else (cart, order)), customer=customer)


async def test_a_buy_now_order_in_the_same_change_as_the_cart_add_cancels_the_reminder(journey) -> None:
    journey.rules(rule(id="cart", **CART))
    outcome = journey.take(_cart_add_and_order(NOON, NOON + timedelta(seconds=1)))
    assert (outcome.planned, outcome.cancelled) == (1, 1)
    [reminder] = journey.decisions()
    assert (reminder.status, reminder.reason) == ("cancelled", "wait cancelled by Order Completed (o1)")
    await journey.dispatcher.tick(NOON + timedelta(hours=2))
    assert journey.mails() == []


@pytest.mark.parametrize("order_listed_first", [True, False], ids=["listed-first", "delivered-late"])
async def test_an_order_placed_before_the_cart_add_does_not_cancel_its_reminder(journey, order_listed_first) -> None:
    journey.rules(rule(id="cart", **CART))
    buy = _cart_add_and_order(NOON, NOON - timedelta(minutes=5), order_listed_first=order_listed_first)
    assert journey.take(buy).cancelled == 0
    assert journey.take(buy).cancelled == 0  # nor when the same change is delivered again
    assert [(a.status, a.reason) for a in journey.decisions()] == [("waiting", None)]


async def test_an_order_at_the_same_instant_cancels_the_reminder_when_it_comes_after_the_cart_add(journey) -> None:
    journey.rules(rule(id="cart", **CART))
    assert journey.take(_cart_add_and_order(NOON, NOON, order_listed_first=True)).cancelled == 0
    assert journey.take(_cart_add_and_order(NOON, NOON, customer="cy")).cancelled == 1


async def test_an_imported_order_in_the_same_change_as_a_live_cart_add_cancels_nothing(journey) -> None:
    journey.rules(rule(id="cart", **CART))
    outcome = journey.take(_cart_add_and_order(NOON, NOON + timedelta(seconds=1), backfill=True))
    assert (outcome.planned, outcome.cancelled) == (1, 0)
    assert [a.status for a in journey.decisions()] == ["waiting"]
