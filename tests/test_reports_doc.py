"""docs/reports.md: its generated part is the reports' own definitions and filters (``make
reports-doc``), and its data-team queries run on the migrated schema."""

from __future__ import annotations

import re

import pytest

from ecrm_aggregator.clickhouse_store import connect
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_embedded.reports_doc import BEGIN, DEFAULT_PATH, END, render, update
from ecrm_interaction.reports import REPORTS
from ecrm_interaction.reports.base import Filters

SQL = re.findall(r"```sql\n(.*?)```", DEFAULT_PATH.read_text(), re.S)


def test_the_reports_document_is_current() -> None:
    document = DEFAULT_PATH.read_text()
    assert document.count(BEGIN) == 1 and document.count(END) == 1
    assert update(document) == document, (
        "docs/reports.md is stale (a report's title, definition, filters or drill-down changed): run "
        "`make reports-doc` and commit it"
    )


def test_the_document_defines_every_report_and_each_of_its_filters() -> None:
    generated = render()
    for name, report in REPORTS.items():
        assert f"### {report.TITLE} (`{name}`)\n\n{report.DEFINITION}\n" in generated
        assert f"`GET /v1/reports/{name}/customers?cell=…`" in generated
        for field in report.Params.model_fields:
            if field not in Filters.model_fields:
                assert f"| `{field}` |" in generated, (name, field)
    assert all(f"| `{field}` |" in generated for field in Filters.model_fields)
    for term in ("conversion", "attributed", "returning", "retained", "cohort", "RFM cells"):
        assert term in generated.split("### The filters every report takes")[0], term


def test_the_document_keeps_its_hand_written_parts_around_the_generated_one() -> None:
    document = DEFAULT_PATH.read_text()
    before, after = document.split(BEGIN)[0], document.split(END)[1]
    assert "## For marketers" in before and "format=csv" in before and "/customers?cell=" in before
    for heading in ("## For data teams", "### Duplicates, FINAL and merges", "### The read-only user",
                    "### Connecting Metabase, Superset and Grafana"):  # fmt: skip
        assert heading in after, heading
    for name in ("events", "customer_events", "customer_profiles", "business_events", "customer_activity",
                 "email_messages", "segment_members", "segment_changes"):  # fmt: skip
        assert f"| `{name}`" in after, name
    assert "bitmapToArray" in after and "groupBitmapMerge" in after and "clickhousedb://" in after


def _statements(block: str) -> list[str]:
    return [s.strip() for s in block.split(";") if s.strip()]


@pytest.fixture(scope="module")
def migrated(clickhouse_server):
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    database = "reports_doc"
    migrate(client, database)
    yield client, database
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client.close()


def test_the_document_has_its_queries() -> None:
    selects = [q for q in SQL if q.lstrip().startswith("SELECT")]
    assert len(selects) >= 5 and any(q.lstrip().startswith("CREATE") for q in SQL)


@pytest.mark.clickhouse
@pytest.mark.parametrize("block", SQL, ids=[f"{q.split()[0].lower()}-{i}" for i, q in enumerate(SQL)])
def test_every_query_in_the_document_runs_or_parses(migrated, block: str) -> None:
    """SELECTs run on the migrated schema; the access statements (users need a server with
    access storage) are parsed by the engine's own parser."""
    client, database = migrated
    for statement in _statements(block):
        client.query("SELECT formatQuery({q:String})", parameters={"q": statement})
        if statement.startswith("SELECT"):
            client.query(statement.replace("ecrm.", f"{database}."))
