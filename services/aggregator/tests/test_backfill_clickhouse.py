"""History imports through the aggregator against the real ClickHouse engine: imported events
build profiles and segments like any other and carry the backfill mark on to the changes they
cause; segment changes name the profile version they saw (issue 16, symptoms 8 and 11)."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aggregator_factories import event, record

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.pipeline import plan_batch
from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_schemas.backfill import BACKFILL_CONTEXT_KEY
from ecrm_schemas.profile import ProfileChanged
from ecrm_schemas.segments import SegmentDefinition

pytestmark = pytest.mark.clickhouse
VIP = SegmentDefinition.model_validate(
    {"id": "vip", "name": "VIP", "condition": {"kind": "trait", "trait": "revenue", "op": "gte", "value": 500}}
)


def _order(customer: str, n: int, total: float, imported: bool):
    at = (datetime.now(UTC) - timedelta(days=30 - n)).isoformat()
    body = event(event="Order Completed", customer=customer, ts=at, messageId=f"o-{customer}-{n}",
                 properties={"order_id": f"{customer}-{n}", "total": total})  # fmt: skip
    if imported:
        body["context"] = {BACKFILL_CONTEXT_KEY: True}
    return body


def test_imported_orders_build_the_profile_and_mark_the_changes_they_cause(store) -> None:
    registry = SegmentRegistry()
    registry.put(VIP)
    writer = BatchWriter(store, None, 0.5, registry, traits_refresh_s=3600)
    imported = [record(_order("ada", n, 130.0, imported=True), n) for n in range(5)]
    result = writer.store_batch(plan_batch(imported))
    [changed] = [ProfileChanged.model_validate_json(c.encode()) for c in result.changes]
    assert (changed.profile.orders, float(changed.profile.revenue)) == (5, 650.0)
    assert changed.backfill and all(t.backfill for t in changed.triggers)
    [entered] = result.membership.events
    assert (entered.type, entered.backfill, entered.profile_version) == (
        "segment.entered", True, changed.profile.version)  # fmt: skip

    live = writer.store_batch(plan_batch([record(_order("bob", 9, 650.0, imported=False), 10)]))
    [bob] = [ProfileChanged.model_validate_json(c.encode()) for c in live.changes]
    assert not bob.backfill and not orjson.loads(live.changes[0].encode())["triggers"][0]["backfill"]
    [entered] = live.membership.events
    assert (entered.customer_id, entered.backfill, entered.profile_version) == ("bob", False, bob.profile.version)


def test_a_live_event_in_the_batch_of_an_import_does_not_make_the_import_live(store) -> None:
    registry = SegmentRegistry()
    registry.put(VIP)
    writer = BatchWriter(store, None, 0.5, registry, traits_refresh_s=3600)
    identify = event("identify", customer="hana", messageId="i-hana", ts=datetime.now(UTC).isoformat(),
                     traits={"email": "hana@example.com"})  # fmt: skip
    batch = [record(identify, 0)] + [record(_order("hana", n, 130.0, imported=True), n + 1) for n in range(5)]
    result = writer.store_batch(plan_batch(batch))
    [changed] = [ProfileChanged.model_validate_json(c.encode()) for c in result.changes]
    assert changed.backfill and [t.backfill for t in changed.triggers] == [False] + [True] * 5
    [entered] = result.membership.events
    assert (entered.customer_id, entered.backfill) == ("hana", True)
