"""The reports benchmark's coverage: every report is measured (a new one cannot be missed) with
filters it accepts; how ClickHouse's plan becomes the bare scan; how the figures are judged.
No ClickHouse."""

from __future__ import annotations

from typing import Any

from bench import report, reports_bench
from bench.console_seed import FULL, QUICK
from bench.reports_bench import (
    CASES,
    Read,
    bare_scan_sql,
    case_label,
    cases_of,
    key_ranges,
    merged,
    reads,
    with_sets,
)
from ecrm_interaction.reports import REPORTS


def test_every_report_is_measured_with_filters_it_accepts() -> None:
    assert REPORTS, "no reports to measure"
    for name, module in REPORTS.items():
        cases = cases_of(name, module)
        assert cases, f"report {name} has no case"
        for raw in cases:
            params = module.Params.model_validate(raw)  # a 422 in the API: fix bench.reports_bench.CASES
            queries = module.queries(params)
            assert queries, f"report {name} ({case_label(raw)}) runs no query"
            assert all("{db}" in q.sql for q in queries.values()), f"report {name} names its database itself"
        assert len({case_label(raw) for raw in cases}) == len(cases), f"report {name} has the same case twice"


def test_a_report_without_cases_gets_its_defaults_and_a_year() -> None:
    unlisted = [name for name in REPORTS if name not in CASES]
    for name in unlisted:
        cases = cases_of(name, REPORTS[name])
        assert cases[0] == {} and cases[1]["since"] == reports_bench.YEAR
    assert "trends" in CASES, "the trends report has its representative cases"
    assert any(c.get("breakdown") == "property" for c in CASES["trends"]), "a property breakdown is measured"


def test_case_labels_read_as_query_strings() -> None:
    assert case_label({}) == "default"
    assert case_label({"since": reports_bench.YEAR, "interval": "week"}) == "since=-365d interval=week"


def test_key_ranges_from_index_conditions() -> None:
    condition = "and((timestamp in ['1793577600', +Inf)), (event in ['Order Completed', 'Order Completed']))"
    assert key_ranges(condition) == [
        ("timestamp", ">=", "'1793577600'"),
        ("event", ">=", "'Order Completed'"),
        ("event", "<=", "'Order Completed'"),
    ]
    assert key_ranges("(timestamp in (-Inf, '1796428800'))") == [("timestamp", "<", "'1796428800'")]
    assert key_ranges("true") == []
    assert key_ranges("or((event in ['A', 'A']), (event in ['B', 'B']))") == [], "an or is not a range"
    assert key_ranges("and((timestamp in ['1', +Inf)), (event in 3-element set))") == [
        ("timestamp", ">=", "'1'"),
        ("event", "in", "3"),
    ]


def test_a_sets_values_come_from_the_query() -> None:
    read = Read("ecrm.business_events", (("case_id", "String"),), True, (("event", "in", "2"),))
    sql = "SELECT case_id FROM b AS e WHERE e.event IN ('Case Opened', 'Case Resolved') AND e.case_id != ''"
    assert with_sets(read, sql, {}).ranges == (("event", "IN", "('Case Opened', 'Case Resolved')"),)
    by_parameter = with_sets(read, "WHERE event IN {names:Array(String)}", {"names": ["A", "it's"]})
    assert by_parameter.ranges == (("event", "IN", "('A', 'it\\'s')"),) and not by_parameter.wider
    unknown = with_sets(read, "WHERE has({names:Array(String)}, event)", {"names": ["A", "B"]})
    assert unknown.ranges == () and unknown.wider, "a set the bare scan cannot repeat: it reads wider, and says so"
    sql = bare_scan_sql([with_sets(read, sql, {})])
    assert sql.endswith("WHERE event IN ('Case Opened', 'Case Resolved')")


TYPES = {"timestamp": "DateTime64(3, 'UTC')", "event": "LowCardinality(String)"}


def _read_node(
    table: str, header: list[str], prewhere: list[str], condition: str, final: bool = False
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "Node Type": "ReadFromMergeTree",
        "Description": table,
        "Header": [{"Name": n, "Type": TYPES.get(n, "String")} for n in header],
        "Indexes": [{"Type": "PrimaryKey", "Condition": condition}],
    }
    if prewhere:
        node["Prewhere info"] = {"Prewhere filter": {"Prewhere filter expression": {
            "Inputs": [{"Name": n, "Type": TYPES.get(n, "String")} for n in prewhere]}}}  # fmt: skip
    if final:
        node["FINAL"] = True
    return node


def test_the_bare_scan_reads_each_tables_columns_over_its_ranges_once() -> None:
    events = _read_node("ecrm.events", ["customer_id"], ["event"], "(timestamp in ['1793577600', +Inf))")
    again = _read_node("ecrm.events", ["properties"], [], "(timestamp in ['1793577600', +Inf))")
    links = _read_node("ecrm.identity_links", ["anonymous_id", "user_id"], [], "true", final=True)
    plan = [{"Plan": {"Node Type": "Expression", "Plans": [{"Node Type": "Join", "Plans": [events, links, again]}]}}]
    found = reads(plan)
    assert [r.table for r in found] == ["ecrm.events", "ecrm.identity_links", "ecrm.events"]
    assert [n for n, _ in found[0].columns] == ["customer_id", "event"], "PREWHERE columns are read too"
    assert found[1].final and found[0].ranges == (("timestamp", ">=", "'1793577600'"),)

    least = merged(found)
    assert len(least) == 2, "one read per table and range"
    assert [n for n, _ in least[0].columns] == ["customer_id", "event", "properties"]
    sql = bare_scan_sql(found, {"ecrm.events": {"timestamp": "DateTime64(3, 'UTC')"}})
    assert sql.count("UNION ALL") == 1
    assert "sum(byteSize(`customer_id`, `event`, `properties`))" in sql
    assert "WHERE timestamp >= toDateTime64(1793577600, 3, 'UTC')" in sql
    assert "FINAL" not in sql, "the bare scan does not merge: it only reads"
    assert bare_scan_sql([]) == "SELECT '' AS t, 0 AS bytes"
    whole = bare_scan_sql([Read("ecrm.profiles", (("traits", "String"),))])
    assert whole.endswith("FROM ecrm.profiles"), "a read without key ranges scans the whole table"


def test_the_extra_events_are_the_same_for_the_same_store() -> None:
    first = reports_bench.extras_sql(QUICK, "2026-12-04 20:00:00")
    assert first == reports_bench.extras_sql(QUICK, "2026-12-04 20:00:00")
    assert first != reports_bench.extras_sql(FULL, "2026-12-04 20:00:00")
    for kind, sql in first.items():
        assert f"concat('{reports_bench.EXTRAS_PREFIX}" in sql, f"{kind}: extra events are found by their message id"
        assert "rand" not in sql, f"{kind}: drawn from the row numbers, not at random"


def _case(p95: float, error: str | None = None) -> dict[str, Any]:
    if error:
        return {"report": "trends", "case": "default", "error": error, "met": False}
    return {"report": "trends", "case": "default", "p95_ms": p95, "met": p95 < 1000, "ratio_to_bare": 4.2,
            "slowest_query": "series", "queries": {"series": {"ms": p95, "read_rows": 10_000_000,
                                                              "read_bytes": 3 * 2**20}}}  # fmt: skip


def test_the_slowest_case_is_held_to_the_ceiling_and_a_failing_report_misses_it() -> None:
    reports: dict[str, Any] = {"customers": 100_000, "events": 10_000_000, "measured": [_case(120.0), _case(640.0)]}
    aim = report.reports_aim(reports)
    assert (aim.figure, aim.met, aim.unit) == (640.0, True, "ms")
    assert report.reports_findings(reports) == []

    reports["measured"].append(_case(1500.0))
    assert report.reports_aim(reports).met is False
    assert report.reports_findings(reports) == [
        "Report trends (default): p95 1,500 ms, over the 1,000 ms ceiling (4.2 × its bare scan); slowest query "
        "'series' (1,500 ms alone) read 10,000,000 rows, 3.0 MiB."
    ]
    reports["measured"] = [_case(120.0), _case(0, error="DatabaseError: boom")]
    assert report.reports_aim(reports).met is False, "a report that fails misses the goal, however fast the rest"


def test_the_suite_runs_the_reports() -> None:
    from bench.suite import STAGES, Plan

    assert "reports" in STAGES
    assert Plan.make(False, 1000, 1, None, None, 1000, ("reports",)).reports_size == QUICK
    assert Plan.make(True, 1000, 1, None, None, 1000, ("reports",)).reports_size == FULL
