"""The reports' pure steps on hand-made rows: what the oracle's generated shop cannot show
(periods that have not begun yet, empty periods filled)."""

from __future__ import annotations

from datetime import date, datetime

from ecrm_interaction.reports import retention, trends


def test_retention_leaves_the_periods_that_have_not_begun_empty() -> None:
    p = retention.Params(since="2026-11-02", until="2026-11-15", periods=4)
    results = {
        "sizes": [{"cohort": date(2026, 11, 2), "customers": 10, "today": date(2026, 11, 18)},
                  {"cohort": date(2026, 11, 9), "customers": 4, "today": date(2026, 11, 18)}],
        "retained": [{"cohort": date(2026, 11, 2), "n": 1, "customers": 5},
                     {"cohort": date(2026, 11, 2), "n": 2, "customers": 2}],
        "revenue": [{"cohort": date(2026, 11, 2), "n": 0, "revenue": 100.0}],
    }  # fmt: skip
    first, second = retention.shape(p, results).rows
    assert [first[f"p{n}"] for n in range(1, 5)] == [0.5, 0.2, None, None], "weeks of 16 and 23 Nov are to come"
    assert [second[f"p{n}"] for n in range(1, 5)] == [0.0, None, None, None]
    assert first["ltv"] == 10.0 and first["ltv2"] == 10.0 and first["ltv3"] is None


def test_trends_fill_the_empty_periods() -> None:
    p = trends.Params(since="2026-11-01", until="2026-11-04")
    report = trends.shape(p, {"series": [{"period": datetime(2026, 11, 2), "grp": "", "n": 3}]})
    assert [(r["period"], r["g0"]) for r in report.rows] == [
        ("2026-11-01", 0), ("2026-11-02", 3), ("2026-11-03", 0), ("2026-11-04", 0)]  # fmt: skip
    assert report.summary["total"] == 3 and report.chart is not None and report.chart.x[1] == "2026-11-02"
