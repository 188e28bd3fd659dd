"""Reports (:mod:`ecrm_interaction.reports`): each as JSON or CSV, and the customers behind any
of its numbers. A report's filters are its query parameters (422 naming a bad one)."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from ecrm_interaction.api.deps import Viewer, WarehouseDep
from ecrm_interaction.api.errors import invalid
from ecrm_interaction.api.services import reports as running
from ecrm_interaction.api.services.spreadsheets import as_csv
from ecrm_interaction.reports import REPORTS
from ecrm_interaction.reports.base import DrillError, Filters, Report

CONTROL = {"format", "cell"}
"""Query parameters of the routes themselves, not filters of the report."""


class ReportKind(BaseModel):
    name: str
    title: str
    definition: str
    parameters: dict[str, Any]
    """The JSON Schema of the report's filters."""


class DrillDown(BaseModel):
    report: str
    cell: str
    filters: dict[str, Any]
    total: int
    customers: list[dict[str, Any]]


def _report(name: str) -> ModuleType:
    report = REPORTS.get(name)
    if report is None:
        raise HTTPException(404, f"no report named {name!r}; the reports are {', '.join(REPORTS)}")
    return report


def _params(report: ModuleType, request: Request) -> Filters:
    given = {k: v for k, v in request.query_params.items() if k not in CONTROL}
    try:
        params: Filters = report.Params.model_validate(given)
    except ValidationError as exc:
        raise invalid(exc) from exc
    return params


def _csv(text: str, filename: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip


def router() -> APIRouter:
    routes = APIRouter(tags=["reports"])

    @routes.get("/v1/reports")
    async def list_reports(_who: Viewer) -> list[ReportKind]:
        """Every report, its definition and the filters it takes."""
        return [
            ReportKind(name=r.NAME, title=r.TITLE, definition=r.DEFINITION, parameters=r.Params.model_json_schema())
            for r in REPORTS.values()
        ]

    @routes.get("/v1/reports/{name}", response_model=None)
    async def report(
        name: str, request: Request, _who: Viewer, warehouse: WarehouseDep,
        format: Literal["json", "csv"] = Query("json"),
    ) -> Report | Response:  # fmt: skip
        """The report with the filters given as query parameters (``GET /v1/reports`` lists each
        report's); ``format=csv``: its table as CSV."""
        kind = _report(name)
        params = _params(kind, request)
        try:
            answer = await running.run(warehouse, kind, params)
        except OperationalError as exc:
            raise HTTPException(503, "clickhouse_unavailable") from exc
        if format == "csv":
            return _csv(running.report_csv(answer), f"{name}-{params.since}-{params.until}.csv")
        return answer

    @routes.get("/v1/reports/{name}/customers", response_model=None)
    async def drill_down(
        name: str, request: Request, _who: Viewer, warehouse: WarehouseDep,
        cell: str = Query(min_length=1, max_length=500), format: Literal["json", "csv"] = Query("json"),
    ) -> DrillDown | Response:  # fmt: skip
        """The customers behind one number of the report: ``cell`` is the ``cell`` of its row (or
        the ``cells`` entry of the number), the filters are the report's."""
        kind = _report(name)
        params = _params(kind, request)
        try:
            rows = await running.customers(warehouse, kind, params, cell)
        except DrillError as exc:
            named = [{"field": "cell", "rule": "drill", "message": str(exc)}]
            raise HTTPException(422, {"code": "invalid_request", "message": str(exc), "errors": named}) from exc
        except OperationalError as exc:
            raise HTTPException(503, "clickhouse_unavailable") from exc
        if format == "csv":
            columns = [(key, key) for key in (rows[0] if rows else {"customer_id": ""})]
            return _csv(as_csv(columns, rows), f"{name}-customers.csv")
        return DrillDown(report=name, cell=cell, filters=params.echo(), total=len(rows), customers=rows)

    return routes
