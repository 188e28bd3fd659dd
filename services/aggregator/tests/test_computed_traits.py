"""The computed traits' formulas, value by value at their boundaries (pure, no I/O)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product

import pytest

from ecrm_aggregator.computed_traits import (
    ACTIVITY_SLOTS,
    RFM_SEGMENTS,
    activity_slot,
    add_activity,
    add_engagement,
    churn_risk,
    decayed,
    engagement_score,
    event_weight,
    legacy_slots,
    lifecycle_stage,
    nps_category,
    nps_trend,
    recency_score,
    rfm,
    rfm_segment,
    typical_interval,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("days", "score"), [(0, 5), (30, 5), (30.5, 4), (60, 4), (61, 3), (120, 3), (121, 2), (240, 2), (241, 1)]
)
def test_recency_score_boundaries(days, score) -> None:
    assert recency_score(days) == score


@pytest.mark.parametrize(
    ("orders", "revenue", "frequency", "monetary"),
    [(1, "49.99", 1, 1), (2, "50", 2, 2), (4, "149.99", 3, 2), (5, "150", 4, 3), (9, "1499", 4, 4), (10, "1500", 5, 5)],
)
def test_frequency_and_monetary_scores(orders, revenue, frequency, monetary) -> None:
    scores = rfm(NOW - DAY, orders, Decimal(revenue), NOW)
    assert scores is not None and (scores.frequency, scores.monetary) == (frequency, monetary)


def test_no_order_no_rfm() -> None:
    assert rfm(None, 0, Decimal(0), NOW) is None


def test_every_rfm_pair_has_exactly_one_segment() -> None:
    for recency, fm in product(range(1, 6), repeat=2):
        matches = [name for name, rs, fms in RFM_SEGMENTS if recency in rs and fm in fms]
        assert len(matches) == 1, (recency, fm, matches)


def test_rfm_segments_of_typical_customers() -> None:
    champion = rfm(NOW - 3 * DAY, 12, Decimal(2400), NOW)
    assert champion is not None and (champion.recency, champion.segment) == (5, "champions")
    assert rfm(NOW - 2 * DAY, 1, Decimal(30), NOW).segment == "new_customers"  # type: ignore[union-attr]
    assert rfm(NOW - 200 * DAY, 10, Decimal(3000), NOW).segment == "cannot_lose_them"  # type: ignore[union-attr]
    assert rfm(NOW - 400 * DAY, 1, Decimal(20), NOW).segment == "lost"  # type: ignore[union-attr]
    assert rfm_segment(3, 2, 3) == "need_attention"  # FM = (2 + 3) / 2 = 2.5 rounds half up to 3


def test_engagement_decays_by_half_every_half_life() -> None:
    assert decayed(40.0, NOW, NOW + 14 * DAY) == pytest.approx(20.0)
    assert decayed(40.0, NOW, NOW - DAY) == 40.0  # never grows backwards
    assert engagement_score(20.0, NOW, NOW) == 63
    assert engagement_score(20.0, NOW, NOW + 28 * DAY) == 22  # 5 points left: 100·(1 - e^-0.25)
    assert engagement_score(0.0, None, NOW) == 0


def test_engagement_sum_does_not_depend_on_the_order_events_are_folded_in() -> None:
    events = [(NOW, 10.0), (NOW - 10 * DAY, 3.0), (NOW - 3 * DAY, 1.0)]
    sums = []
    for order in (events, list(reversed(events)), sorted(events)):
        raw, at = 0.0, None
        for event_at, weight in order:
            raw, at = add_engagement(raw, at, weight, event_at)
        sums.append(decayed(raw, at, NOW))
    assert sums[0] == pytest.approx(sums[1]) == pytest.approx(sums[2])
    assert sums[0] == pytest.approx(10 + 3 * 2 ** (-10 / 14) + 2 ** (-3 / 14))


def test_machine_opens_do_not_count_as_engagement() -> None:
    assert event_weight("Email Opened", {"machine_open": True}) == 0.0
    assert event_weight("Email Opened", {"machine_open": False}) == 1.0
    assert event_weight("Order Completed") == 10.0
    assert event_weight("Some Custom Event") == 0.0


@pytest.mark.parametrize(("score", "category"), [(10, "promoter"), (9, "promoter"), (8, "passive"), (7, "passive"),
                                                 (6, "detractor"), (0, "detractor"), (None, None)])  # fmt: skip
def test_nps_category(score, category) -> None:
    assert nps_category(score) == category


def test_nps_trend() -> None:
    assert [nps_trend(9, 6), nps_trend(6, 9), nps_trend(7, 7), nps_trend(7, None)] == ["up", "down", "flat", None]


def test_typical_interval_is_a_smoothed_mean_of_gaps_between_visits() -> None:
    def slots(*times: datetime) -> list[int]:
        kept: list[int] = []
        for at in times:
            add_activity(kept, at)
        return kept

    assert typical_interval(slots(NOW - 10 * DAY, NOW)) == pytest.approx(10.0)
    assert typical_interval(slots(NOW - 30 * DAY, NOW - 20 * DAY, NOW)) == pytest.approx(0.3 * 20 + 0.7 * 10)
    same_visit = slots(NOW - 30 * DAY, NOW - 20 * DAY, NOW - 20 * DAY + timedelta(minutes=5))
    assert typical_interval(same_visit) == pytest.approx(10.0)
    assert slots(NOW, NOW - 10 * DAY) == slots(NOW - 10 * DAY, NOW)  # a set: arrival order does not matter
    assert typical_interval(slots(NOW)) is None and typical_interval([]) is None
    many = slots(*(NOW - i * DAY for i in range(ACTIVITY_SLOTS + 10)))
    assert len(many) == ACTIVITY_SLOTS and many[-1] == activity_slot(NOW)  # the latest are kept
    assert typical_interval(legacy_slots(NOW, 7.0)) == pytest.approx(7.0, abs=0.05)  # folded before slots


def test_churn_risk_compares_idle_time_with_the_customers_own_rhythm() -> None:
    weekly = 7.0
    assert churn_risk(NOW - 10 * DAY, weekly, NOW).level == "low"
    assert churn_risk(NOW - 14 * DAY, weekly, NOW).level == "medium"
    assert churn_risk(NOW - 28 * DAY, weekly, NOW).level == "high"
    assert churn_risk(NOW - 28 * DAY, None, NOW).level == "low"  # default 30-day rhythm
    assert churn_risk(NOW - 28 * DAY, weekly, NOW).ratio == 4.0


def test_lifecycle_stages() -> None:
    def stage(orders, first_order_days, idle_days, typical=7.0):
        last = NOW - idle_days * DAY
        first = NOW - first_order_days * DAY if first_order_days is not None else None
        return lifecycle_stage(orders, first, last, churn_risk(last, typical, NOW), NOW)

    assert stage(0, None, 1) == "prospect"
    assert stage(1, 5, 1) == "new"
    assert stage(3, 90, 2) == "active"
    assert stage(3, 90, 30) == "at_risk"
    assert stage(3, 400, 200) == "churned"
    assert stage(0, None, 200) == "churned"


def test_loyalty_is_not_computed_here_but_carried_over_from_the_ledger() -> None:
    """The interaction service's ledger owns the balance: revenue alone gives no points, and a
    computation keeps what the ledger last reported."""
    from ecrm_aggregator.computed_traits import compute
    from ecrm_aggregator.profile_state import ProfileState, Traits

    profile = ProfileState(customer_id="u1", first_seen=NOW, last_seen=NOW, orders=1, revenue=Decimal(900))
    assert (compute(profile, NOW).loyalty_points, compute(profile, NOW).loyalty_tier) == (0, "bronze")
    profile.computed = Traits(NOW - DAY, loyalty_points=2100, loyalty_tier="gold")
    assert (compute(profile, NOW).loyalty_points, compute(profile, NOW).loyalty_tier) == (2100, "gold")
