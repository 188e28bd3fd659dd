"""Identity stitching, the merge guard and unmerge, against the real ClickHouse engine."""

import pytest
from aggregator_factories import event, record

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.identity_admin import UnmergeRefused, apply_unmerge, plan_unmerge
from ecrm_aggregator.pipeline import plan_batch

pytestmark = pytest.mark.clickhouse


def _anonymous(type_: str, offset: int, anonymous_id: str = "a1", **fields):
    body = event(type_, customer=anonymous_id, **fields)
    body["anonymousId"] = body.pop("userId")
    return record(body, offset, partition=1)


def _order(offset: int, total: float, customer: str = "u1", partition: int = 0, ts: str = "2026-11-20T12:00:00Z"):
    props = {"order_id": f"o{offset}", "total": total}
    return record(event(event="Order Completed", customer=customer, properties=props, ts=ts), offset, partition)


def _query(store, sql: str):
    return store.client.query(sql.replace("{db}", store.database)).result_rows


def _stitched(store) -> BatchWriter:
    writer = BatchWriter(store, None, 0.5)
    writer.store_batch(plan_batch([
        _anonymous("page", 0, ts="2026-11-20T09:00:00Z"),
        _anonymous("track", 1, event="Product Viewed", properties={"product_id": "p1"}, ts="2026-11-20T09:01:00Z"),
        _anonymous("page", 2, ts="2026-11-20T09:02:00Z"),
    ]))  # fmt: skip
    writer.store_batch(plan_batch([_order(0, 40)]))
    identify = event("identify", customer="u1", anonymousId="a1", traits={"email": "ada@example.com"},
                     messageId="identify-1", ts="2026-11-20T13:00:00Z")  # fmt: skip
    writer.store_batch(plan_batch([record(identify, 1)]))
    return writer


def test_anonymous_events_count_toward_the_user_after_identify(store) -> None:
    writer = _stitched(store)
    profiles = store.load_profiles(["u1", "a1"])
    user = profiles["u1"]
    assert (user.page_views, user.orders, user.event_count, user.email) == (2, 1, 5, "ada@example.com")
    assert user.event_counts["Product Viewed"] == 1 and user.positions == {0: 1, 1: 2}
    assert profiles["a1"].merged_into == "u1"
    assert _query(store, "SELECT customer_id, count() FROM {db}.customer_events GROUP BY customer_id") == [("u1", 5)]
    assert _query(store, "SELECT customer_id FROM {db}.customer_profiles") == [("u1",)]
    assert _query(store, "SELECT action, anonymous_id, user_id, message_id FROM {db}.identity_merges") == [
        ("merged", "a1", "u1", "identify-1")
    ]

    writer.store_batch(plan_batch([_anonymous("page", 3, ts="2026-11-21T09:00:00Z")]))  # still anonymous on the site
    assert store.load_profiles(["u1"])["u1"].page_views == 3
    writer.store_batch(plan_batch([record(event("identify", customer="u1", anonymousId="a1", messageId="identify-1",
                                               ts="2026-11-20T13:00:00Z"), 1)]))  # a redelivered identify  # fmt: skip
    assert store.load_profiles(["u1"])["u1"].page_views == 3
    assert len(_query(store, "SELECT * FROM {db}.identity_merges")) == 1


def test_the_merge_guard_refuses_a_second_user_and_records_why(store) -> None:
    writer = _stitched(store)
    claim = event("identify", customer="u2", anonymousId="a1", messageId="i-u2")
    writer.store_batch(plan_batch([_order(0, 10, customer="u2", partition=2), record(claim, 1, 2)]))
    alias = {"type": "alias", "previousId": "u2", "userId": "u1", "messageId": "alias-1",
             "timestamp": "2026-11-20T14:00:00Z", "receivedAt": "2026-11-20T14:00:00Z"}  # fmt: skip
    writer.store_batch(plan_batch([record(alias, 2)]))
    profiles = store.load_profiles(["u1", "u2"])
    assert (profiles["u1"].orders, profiles["u2"].orders) == (1, 1)
    refused = _query(store, "SELECT anonymous_id, user_id, message_id FROM {db}.identity_merges "
                            "WHERE action = 'refused' ORDER BY message_id")  # fmt: skip
    assert refused == [("u2", "u1", "alias-1"), ("a1", "u2", "i-u2")]


def test_unmerge_previews_then_recomputes_both_profiles_and_sticks(store) -> None:
    writer = _stitched(store)
    plan = plan_unmerge(store, "a1", actor="ops@example.com", reason="shared computer")
    assert "unmerge 'a1' from 'u1'" in plan.summary()[0]
    assert store.load_profiles(["u1"])["u1"].page_views == 2  # a preview writes nothing

    apply_unmerge(store, plan, producer=None)
    profiles = store.load_profiles(["u1", "a1"])
    assert (profiles["u1"].page_views, profiles["u1"].orders, profiles["u1"].event_count) == (0, 1, 2)
    assert profiles["u1"].version > plan.user_before.version
    assert (profiles["a1"].page_views, profiles["a1"].merged_into) == (2, None)
    assert _query(store, "SELECT customer_id, count() FROM {db}.customer_events GROUP BY customer_id ORDER BY 1") == [
        ("a1", 3), ("u1", 2)]  # fmt: skip
    assert _query(store, "SELECT action, actor, reason FROM {db}.identity_merges WHERE action = 'unmerged'") == [
        ("unmerged", "ops@example.com", "shared computer")]  # fmt: skip

    writer.store_batch(plan_batch([record(event("identify", customer="u1", anonymousId="a1", messageId="again"), 2)]))
    assert store.load_profiles(["a1"])["a1"].merged_into is None  # the same user does not take it back
    # The writer folds on from the CLI's profile, not from the copy it kept of its own last write.
    writer.store_batch(plan_batch([_order(3, 10, ts="2026-11-22T12:00:00Z")]))
    user = store.load_profiles(["u1"])["u1"]
    assert (user.page_views, user.orders, user.event_count) == (0, 2, 4)
    with pytest.raises(UnmergeRefused):
        plan_unmerge(store, "a1", actor="ops", reason="twice")


@pytest.fixture
def json_logs():
    """The aggregator's log configuration (JSON, redacted); the lines written, parsed."""
    import io
    import json
    import logging

    import structlog

    from ecrm_schemas.logs import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("aggregator", "INFO", "json")
    written = io.StringIO()
    root.handlers[0].setStream(written)  # type: ignore[attr-defined]
    yield lambda: [json.loads(line) for line in written.getvalue().splitlines()]
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_every_refusal_and_unmerge_leaves_one_log_line_without_personal_data(store, json_logs) -> None:
    """Issue 16 #23: the merge guard's refusals and operators' unmerges were silent in the logs."""
    writer = _stitched(store)
    claim = event("identify", customer="u2", anonymousId="a1", messageId="i-u2", traits={"email": "eve@example.com"})
    writer.store_batch(plan_batch([_order(0, 10, customer="u2", partition=2), record(claim, 1, 2)]))
    alias = {"type": "alias", "previousId": "u2", "userId": "u1", "messageId": "alias-1",
             "timestamp": "2026-11-20T14:00:00Z", "receivedAt": "2026-11-20T14:00:00Z"}  # fmt: skip
    writer.store_batch(plan_batch([record(alias, 2)]))
    apply_unmerge(store, plan_unmerge(store, "a1", actor="ops@example.com", reason="Ada's shared computer"), None)

    lines = json_logs()
    decisions = [line for line in lines if line["event"] in ("identity_merge_refused", "identity_unmerged")]
    assert [(d["event"], d["anonymous_id"], d["user_id"], d["message_id"], d.get("rule")) for d in decisions] == [
        ("identity_merge_refused", "a1", "u2", "i-u2", "already_merged"),
        ("identity_merge_refused", "u2", "u1", "alias-1", "known_user"),
        ("identity_unmerged", "a1", "u1", decisions[2]["message_id"], None),
    ]
    assert decisions[2]["actor"] == "[email]" and decisions[2]["profiles_recomputed"] == 2
    assert all(d["level"] in ("info", "warning") and d["service"] == "aggregator" for d in decisions)
    text = str(lines)
    assert "ada@example.com" not in text and "eve@example.com" not in text and "shared computer" not in text
