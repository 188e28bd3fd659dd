"""The contact policy, planning and the loyalty program (pure)."""

from datetime import UTC, datetime, time, timedelta

from interaction_factories import T0, facts, rule, trigger

from ecrm_interaction.engine.contact_policy import (
    Contact,
    FrequencyCap,
    History,
    PolicySettings,
    decide,
    quiet_hours_end,
)
from ecrm_interaction.engine.loyalty import earned, next_tier, tier_of
from ecrm_interaction.engine.planning import plan, reward_code
from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_interaction.engine.triggers import Firing
from ecrm_interaction.settings import InteractionSettings

NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)
OK = Contact("ada@example.com", "Europe/Oslo", None)
POLICY = PolicySettings()


def test_every_policy_rule_in_its_order() -> None:
    assert decide(Contact(None), History(), "marketing", None, NOON).reason == "no_email_address"
    bounced = Contact("a@x.io", suppressed="hard_bounce", unsubscribed=True)
    assert decide(bounced, History(), "transactional", None, NOON).reason == "hard_bounce"  # even transactional
    assert decide(Contact("a@x.io", unsubscribed=True), History(), "marketing", None, NOON).reason == "unsubscribed"
    assert decide(Contact("a@x.io", unsubscribed=True), History(), "transactional", None, NOON).outcome == "send"
    assert decide(Contact("a@x.io", consent=False), History(), "marketing", None, NOON).reason == "no_consent"
    opt_in = PolicySettings(require_opt_in=True)
    assert decide(Contact("a@x.io"), History(), "marketing", None, NOON, opt_in).reason == "no_consent"
    assert decide(Contact("a@x.io", consent=True), History(), "marketing", None, NOON, opt_in).outcome == "send"
    recent = History(rule_last_at=NOON - timedelta(days=1))
    assert decide(OK, recent, "transactional", timedelta(days=3), NOON).reason == "cooldown"
    assert decide(OK, recent, "marketing", timedelta(hours=1), NOON).outcome == "send"


def test_frequency_caps_count_marketing_mail_and_spare_transactional() -> None:
    today = History(marketing_sent_at=[NOON - timedelta(hours=3)])
    assert decide(OK, today, "marketing", None, NOON).reason == "frequency_cap_1_per_1d"
    assert decide(OK, today, "transactional", None, NOON).outcome == "send"
    week = History(marketing_sent_at=[NOON - timedelta(days=d) for d in (2, 3, 4)])
    assert decide(OK, week, "marketing", None, NOON).reason == "frequency_cap_3_per_1w"
    assert decide(OK, History([NOON - timedelta(days=8)] * 5), "marketing", None, NOON).outcome == "send"


def test_onboarding_mail_is_marketing_that_the_caps_neither_hold_back_nor_count() -> None:
    today = History(marketing_sent_at=[NOON - timedelta(hours=3)])
    assert decide(OK, today, "onboarding", None, NOON).outcome == "send"
    assert decide(Contact("a@x.io", unsubscribed=True), History(), "onboarding", None, NOON).reason == "unsubscribed"
    assert decide(Contact("a@x.io", consent=False), History(), "onboarding", None, NOON).reason == "no_consent"
    night = datetime(2026, 11, 20, 23, tzinfo=UTC)
    assert decide(Contact("a@x.io"), History(), "onboarding", None, night).reason == "quiet_hours"


def test_quiet_hours_defer_to_their_end_in_the_customers_time_zone() -> None:
    late_in_oslo = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)  # 22:30 in Oslo
    verdict = decide(OK, History(), "marketing", None, late_in_oslo)
    assert (verdict.outcome, verdict.reason) == ("defer", "quiet_hours")
    assert verdict.until == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)  # 08:00 in Oslo
    early = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)  # 06:00 in Oslo
    assert quiet_hours_end(early, "Europe/Oslo", POLICY) == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    assert decide(OK, History(), "transactional", None, late_in_oslo).outcome == "send"
    assert quiet_hours_end(NOON, "Not/AZone", POLICY) is None  # unknown zones fall back to the default
    daytime = PolicySettings(quiet_start=time(12), quiet_end=time(14))
    assert quiet_hours_end(NOON, None, daytime) == datetime(2026, 11, 20, 14, tzinfo=UTC)


def test_settings_parse_caps_and_quiet_hours() -> None:
    settings = InteractionSettings(interaction_frequency_caps="2/12h, 5/7d", interaction_quiet_hours="22:00-07:30")
    policy = settings.policy()
    assert policy.caps == (FrequencyCap(2, timedelta(hours=12)), FrequencyCap(5, timedelta(days=7)))
    assert (policy.quiet_start, policy.quiet_end) == (time(22), time(7, 30))
    assert InteractionSettings(interaction_quiet_hours="").policy().quiet_start == time(0)


def _firing(spec, cause="m:m1") -> Firing:
    return Firing(spec, "u1", cause, "because", {"message_id": "m1"})


def test_planning_honours_cooldown_conditions_and_waits() -> None:
    spec = rule(
        cooldown="3d",
        conditions={"kind": "trait", "trait": "orders", "op": "gte", "value": 1},
        wait={"duration": "1h", "cancel_on": [{"event": "Order Completed"}]},
        actions=[{"kind": "email", "template": "t"}, {"kind": "points", "points": 50}],
    )
    planned = plan(_firing(spec), facts(), T0, None, "s3cret")
    assert [(a.kind, a.status, a.due_at, a.dedup_key) for a in planned.actions] == [
        ("email", "waiting", T0 + timedelta(hours=1), "r:u1:m:m1:0"),
        ("points", "waiting", T0 + timedelta(hours=1), "r:u1:m:m1:1"),
    ]
    assert planned.actions[0].payload["cancel_on"] == [{"event": "Order Completed", "where": {}}]
    assert plan(_firing(spec), facts(), T0, T0 - timedelta(days=1), "s").skipped == "cooldown"
    no_orders = facts({"customer_id": "u1", "orders": 0})
    assert plan(_firing(spec), no_orders, T0, None, "s").skipped == "conditions not met: orders ≥ 1"


def test_a_rewards_code_is_the_same_for_the_reward_and_its_email() -> None:
    spec = rule(actions=[{"kind": "reward", "reward": "gold-voucher"}, {"kind": "email", "template": "t"}])
    planned = plan(_firing(spec), facts(), T0, None, "s3cret")
    codes = {a.payload["reward_code"] for a in planned.actions}
    assert codes == {reward_code("r:u1:m:m1", "s3cret")} and len(codes.pop()) == 14
    assert reward_code("r:u1:m:m1", "other") != reward_code("r:u1:m:m1", "s3cret")


def test_loyalty_points_for_purchases_refunds_and_engagement() -> None:
    program = LoyaltyProgram()
    assert earned(trigger("track", "Order Completed", order_id="o1", total=120.9), program) == (120, "order o1")
    assert earned(trigger("track", "Order Completed", total=100, revenue=80), program) == (80, "order")
    assert earned(trigger("track", "Order Refunded", order_id="o1", total=20), program) == (-20, "refund of order o1")
    assert earned(trigger("track", "Survey Answered"), program) == (20, "Survey Answered")
    assert earned(trigger("page"), program) is None
    assert [tier_of(p, program) for p in (0, 499, 500, 2000, 9999)] == [
        "bronze",
        "bronze",
        "silver",
        "gold",
        "platinum",
    ]
    assert next_tier(1900, program) == {"tier": "gold", "points_needed": 100} and next_tier(6000, program) is None
