"""Issue 16 #16: churn risk and lifecycle stage must not depend on the order events arrive in.

The same ten orders sent newest-first gave "low / active", oldest-first "high / at_risk": the
typical interval between visits was a running mean that skipped events older than the last
one folded. Profiles are folded from whatever order Kafka delivers (a batch, several batches,
a back end importing history newest first), so every order must give the same traits.
"""

from datetime import UTC, datetime, timedelta

import pytest
from aggregator_factories import event, record
from hypothesis import given, settings
from hypothesis import strategies as st

from ecrm_aggregator.decode import decode_records
from ecrm_aggregator.profile_folding import fold

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ORDER_TRAITS = ("churn_ratio", "churn_risk", "lifecycle_stage")


def _positioned(bodies: list[dict]) -> list:
    """Records at increasing offsets in the order given (the order they arrive in)."""
    return decode_records([record(body, offset) for offset, body in enumerate(bodies)]).events


def _order(day: float, n: int) -> dict:
    ts = (NOW - timedelta(days=day)).isoformat()
    return event(event="Order Completed", properties={"order_id": f"o{n}", "total": 20}, ts=ts, messageId=f"o{n}")


def _page(day: float, n: int) -> dict:
    return event("page", ts=(NOW - timedelta(days=day)).isoformat(), messageId=f"p{n}")


def _traits(profile) -> tuple:
    computed = profile.computed
    return (profile.typical_interval_days, profile.last_active_at,
            *(getattr(computed, name) for name in ORDER_TRAITS))  # fmt: skip


def _fold_in_one_batch(bodies: list[dict]):
    folded = fold(None, _positioned(bodies), NOW)
    assert folded is not None
    return folded.profile


def _fold_one_batch_each(bodies: list[dict]):
    profile = None
    for positioned in _positioned(bodies):
        folded = fold(profile, [positioned], NOW)
        assert folded is not None
        profile = folded.profile
    return profile


def test_ten_orders_newest_first_or_oldest_first_give_the_same_churn_risk_and_stage() -> None:
    # Weekly orders ten weeks ago, then nothing for 45 days: idle for more than 4 typical intervals.
    orders = [_order(45 + 7 * i, i) for i in range(10)]
    oldest_first, newest_first = list(reversed(orders)), orders
    expected = _fold_in_one_batch(oldest_first)
    assert (expected.computed.churn_risk, expected.computed.lifecycle_stage) == ("high", "at_risk")
    assert expected.typical_interval_days is not None and round(expected.typical_interval_days, 6) == 7.0
    assert _traits(_fold_in_one_batch(newest_first)) == _traits(expected)
    assert _traits(_fold_one_batch_each(newest_first)) == _traits(expected)


ACTIVITY = st.lists(
    st.tuples(st.sampled_from(["order", "page"]), st.floats(min_value=0, max_value=400, allow_nan=False)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(activity=ACTIVITY, data=st.data())
def test_every_order_of_the_same_events_gives_the_same_churn_and_lifecycle(activity, data) -> None:
    bodies = [(_order if kind == "order" else _page)(day, n) for n, (kind, day) in enumerate(activity)]
    chronological = sorted(bodies, key=lambda b: b["timestamp"])
    expected = _traits(_fold_in_one_batch(chronological))
    shuffled = data.draw(st.permutations(bodies))
    assert _traits(_fold_in_one_batch(shuffled)) == expected
    assert _traits(_fold_one_batch_each(shuffled)) == expected


@pytest.mark.clickhouse
def test_through_the_pipeline_the_same_orders_in_either_order_give_the_same_profile(store) -> None:
    """Two customers, the same ten orders: one sent newest first in one batch, the other oldest
    first over two batches; ClickHouse stores the same churn risk and stage for both."""
    from ecrm_aggregator.batch_writer import BatchWriter
    from ecrm_aggregator.pipeline import plan_batch

    now = datetime.now(UTC)

    def order(customer: str, i: int) -> dict:
        ts = (now - timedelta(days=45 + 7 * i)).isoformat()
        return event(event="Order Completed", customer=customer, properties={"order_id": f"o{i}", "total": 20},
                     ts=ts, messageId=f"{customer}-o{i}")  # fmt: skip

    writer = BatchWriter(store, None, 0.5)
    newest_first = [order("newest", i) for i in range(10)]
    oldest_first = [order("oldest", i) for i in reversed(range(10))]
    writer.store_batch(plan_batch([record(b, i) for i, b in enumerate(newest_first)]))
    writer.store_batch(plan_batch([record(b, 100 + i, partition=1) for i, b in enumerate(oldest_first[:5])]))
    writer.store_batch(plan_batch([record(b, 105 + i, partition=1) for i, b in enumerate(oldest_first[5:])]))
    profiles = store.load_profiles(["newest", "oldest"])
    seen = {
        c: (p.typical_interval_days, p.computed.churn_risk, p.computed.lifecycle_stage) for c, p in profiles.items()
    }
    assert seen["newest"] == seen["oldest"]
    assert seen["newest"][1:] == ("high", "at_risk") and seen["newest"][0] == pytest.approx(7.0)
    assert profiles["newest"].activity_slots == sorted(profiles["oldest"].activity_slots)
