"""The reports' I/O shell: a report's queries run on ClickHouse (concurrently), their rows
shaped by the report's pure step; a drill-down's customers; a report as CSV."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

from ecrm_interaction.api.services.spreadsheets import as_csv
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.reports.base import Filters, Report


async def run(warehouse: Warehouse, report: ModuleType, params: Filters) -> Report:
    queries = report.queries(params)
    answers = await asyncio.gather(*(warehouse.query(q.sql, q.parameters) for q in queries.values()))
    shaped: Report = report.shape(params, dict(zip(queries, answers, strict=True)))
    return shaped


async def customers(warehouse: Warehouse, report: ModuleType, params: Filters, cell: str) -> list[dict[str, Any]]:
    """The customers behind ``cell`` (a :class:`~ecrm_interaction.reports.base.DrillError` when
    it names no number of the report), with what the report counted of each."""
    query = report.drill(params, cell)
    return await warehouse.query(query.sql, query.parameters)


def report_csv(report: Report) -> str:
    return as_csv([(c.key, c.label) for c in report.columns], report.rows)
