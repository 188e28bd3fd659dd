"""Satisfaction: the Net Promoter Score per period with its number of answers and margin of
error, promoters, passives and detractors; and how a survey question's answers are spread."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from ecrm_interaction.reports.base import (
    BUCKET,
    CUSTOMER,
    DRILL_LIMIT,
    LINKS,
    Chart,
    Column,
    DrillError,
    Filters,
    Interval,
    Query,
    Report,
    Series,
    in_segment,
    next_period,
    parse_period,
    period_label,
    periods,
)
from ecrm_schemas.catalog import CatalogEvent

NAME = "satisfaction"
TITLE = "Satisfaction"
DEFINITION = (
    "Every NPS answer in the period counts (a customer who answers twice counts twice): "
    "promoters answered 9 or 10, passives 7 or 8, detractors 0 to 6. NPS is the percentage of "
    "promoters minus the percentage of detractors (-100 to 100). Its margin of error is the 95 % "
    "interval's half-width, 1.96 × 100 × √((p + d − (p − d)²) / n) for shares p and d of n "
    "answers. With a survey chosen, only that survey's NPS answers count; with a question of it "
    "too, that question's answers are counted by value (text as written, numbers as numbers)."
)
GROUPS = ("promoters", "passives", "detractors")
NPS, ANSWER = CatalogEvent.NPS_ANSWERED.value, CatalogEvent.SURVEY_ANSWERED.value


class Params(Filters):
    interval: Literal[Interval.DAY, Interval.WEEK, Interval.MONTH] = Interval.WEEK
    survey: str | None = Field(default=None, min_length=1, max_length=200)
    question: str | None = Field(default=None, min_length=1, max_length=200)
    """With ``survey``: the question whose answers are counted (``Survey Answered``)."""


def margin(promoters: int, detractors: int, answers: int) -> float | None:
    """The NPS's 95 % margin of error, in points."""
    if not answers:
        return None
    p, d = promoters / answers, detractors / answers
    return 1.96 * 100 * math.sqrt(max(0.0, p + d - (p - d) ** 2) / answers)


def _answers(event: str) -> str:
    return f"""
    SELECT {CUSTOMER} AS customer, e.timestamp AS timestamp, e.score AS score, e.answer AS answer,
           e.survey_id AS survey_id, e.question_id AS question_id
    FROM {{db}}.business_events AS e FINAL LEFT ANY JOIN {LINKS} AS l ON e.customer_id = l.anonymous_id
    WHERE e.event = '{event}' AND e.timestamp >= {{start:DateTime64(3, 'UTC')}} AND e.timestamp < {{end:DateTime64(3, 'UTC')}}"""


def _nps() -> str:
    return f"SELECT * FROM ({_answers(NPS)}) WHERE score >= 0 AND ({{survey:String}} = '' OR survey_id = {{survey:String}}) AND {in_segment()}"


def _parameters(p: Params) -> dict[str, Any]:
    return p.bounds() | {"survey": p.survey or "", "question": p.question or ""}


def queries(p: Params) -> dict[str, Query]:
    nps = f"""
    SELECT {BUCKET[p.interval]}(timestamp) AS period, count() AS answers, countIf(score >= 9) AS promoters,
           countIf(score BETWEEN 7 AND 8) AS passives, countIf(score <= 6) AS detractors
    FROM ({_nps()}) GROUP BY period"""
    found = {"nps": Query(nps, _parameters(p))}
    if p.survey and p.question:
        spread = f"""
        SELECT if(JSONType(answer) = 'String', JSONExtractString(answer), answer) AS value, count() AS answers
        FROM ({_answers(ANSWER)})
        WHERE survey_id = {{survey:String}} AND question_id = {{question:String}} AND {in_segment()}
        GROUP BY value ORDER BY answers DESC, value LIMIT 50"""
        found["answers"] = Query(spread, _parameters(p))
    return found


def _score(promoters: int, detractors: int, answers: int) -> float | None:
    return (promoters - detractors) * 100 / answers if answers else None


def shape(p: Params, results: dict[str, list[dict[str, Any]]]) -> Report:
    by_period = {period_label(r["period"], p.interval): r for r in results["nps"]}
    rows = []
    totals = dict.fromkeys(("answers", *GROUPS), 0)
    for start in periods(p.since, p.until, p.interval):
        label = period_label(start, p.interval)
        r = by_period.get(label, {})
        counts = {k: int(r.get(k, 0)) for k in ("answers", *GROUPS)}
        for k, v in counts.items():
            totals[k] += v
        rows.append({"period": label, **counts, "nps": _score(counts["promoters"], counts["detractors"], counts["answers"]),
                     "margin": margin(counts["promoters"], counts["detractors"], counts["answers"]),
                     "cell": f"{label}/answers", "cells": {g: f"{label}/{g}" for g in GROUPS}})  # fmt: skip
    columns = [
        Column(key="period", label="Period", kind="period"),
        Column(key="nps", label="NPS", kind="number"),
        Column(key="margin", label="± margin (95 %)", kind="number"),
        Column(key="answers", label="Answers"),
    ]
    columns += [Column(key=g, label=g.capitalize()) for g in GROUPS]
    chart = Chart(kind="line", x=[r["period"] for r in rows], y="number",
                  series=[Series(label="NPS", values=[r["nps"] for r in rows])])  # fmt: skip
    summary: dict[str, Any] = {**totals, "nps": _score(totals["promoters"], totals["detractors"], totals["answers"]),
                               "margin": margin(totals["promoters"], totals["detractors"], totals["answers"])}  # fmt: skip
    if "answers" in results:
        summary["question"] = {"survey": p.survey, "question": p.question,
                               "answers": [{"answer": r["value"], "count": int(r["answers"])} for r in results["answers"]]}  # fmt: skip
    return Report(name=NAME, title=TITLE, definition=DEFINITION, filters=p.echo(), columns=columns, rows=rows,
                  chart=chart, summary=summary)  # fmt: skip


def drill(p: Params, cell: str) -> Query:
    """The customers who answered in one period (``period/answers``, or ``period/promoters`` …)."""
    label, _, group = cell.partition("/")
    wanted = {
        "answers": "1",
        "promoters": "score >= 9",
        "passives": "score BETWEEN 7 AND 8",
        "detractors": "score <= 6",
    }
    if group not in wanted:
        raise DrillError(f"a cell of this report is period/answers or period/{'|'.join(GROUPS)}, not {cell!r}")
    start = parse_period(label, p.interval)
    parameters = _parameters(p) | {"start": max(start, p.start), "end": min(next_period(start, p.interval), p.end)}
    sql = f"""
    SELECT customer AS customer_id, count() AS answers, argMax(score, timestamp) AS latest_score FROM ({_nps()})
    WHERE {wanted[group]} GROUP BY customer ORDER BY customer LIMIT {DRILL_LIMIT}"""
    return Query(sql, parameters)
