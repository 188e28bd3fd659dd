"""Every example query in docs/clickhouse.md runs against the migrated schema, with data."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aggregator_factories import event, record
from test_segments import detractors

from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.pipeline import plan_batch
from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_aggregator.settings import AggregatorSettings

pytestmark = pytest.mark.clickhouse
DOC = Path(__file__).resolve().parents[3] / "docs" / "clickhouse.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)


def test_the_reference_has_its_example_queries() -> None:
    assert len(QUERIES) >= 8


@pytest.fixture(scope="module")
def loaded(clickhouse_server):
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    database = "docs_examples"
    migrate(client, database)
    registry = SegmentRegistry()
    registry.put(detractors())
    writer = BatchWriter(ClickHouseStore(client, database), None, 0.5, registry)
    ts = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    events = [
        event(event="Product Viewed", properties={"product_id": "p1"}, ts=ts, messageId="v"),
        event(event="Order Completed", properties={"order_id": "o", "total": 30}, ts=ts, messageId="o"),
        event(event="Email Opened", properties={"email_id": "e1"}, ts=ts, messageId="eo"),
        event(event="NPS Answered", properties={"survey_id": "s", "score": 3}, ts=ts, messageId="n"),
    ]
    result = writer.store_batch(plan_batch([record(e, i) for i, e in enumerate(events)]))
    writer.store.insert_membership(result.membership, "docs")
    writer.tick([0])
    yield client, database
    client.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.mark.parametrize("sql", QUERIES, ids=lambda q: q.split("FROM")[1].split()[0] if "FROM" in q else q[:20])
def test_example_query_runs(loaded, sql: str) -> None:
    client, database = loaded
    rows = client.query(sql.replace("ecrm.", f"{database}.")).result_rows
    assert isinstance(rows, list)


def test_examples_see_the_data(loaded) -> None:
    client, database = loaded
    by_segment = next(q for q in QUERIES if "segment_members AS m" in q)
    assert client.query(by_segment.replace("ecrm.", f"{database}.")).result_rows == [("NPS detractors", 1)]
    nps = next(q for q in QUERIES if "NPS Answered" in q)
    [(_, answers, score)] = client.query(nps.replace("ecrm.", f"{database}.")).result_rows
    assert (answers, score) == (1, -100.0)
