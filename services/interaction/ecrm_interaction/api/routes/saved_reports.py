"""Saved reports (a report with its filters, on a rolling or a fixed range), dashboards (saved
reports in order) and subscriptions to either (sent by email daily, weekly or monthly)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from clickhouse_connect.driver.exceptions import OperationalError
from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as FastApiPath
from pydantic import BaseModel, Field, ValidationError, field_validator

from ecrm_interaction.api.deps import Marketer, SessionDep, Viewer, WarehouseDep
from ecrm_interaction.api.routes.users import EMAIL
from ecrm_interaction.api.services import reports as running
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.delivery.report_mail import NothingToSend
from ecrm_interaction.engine.report_subscriptions import Cadence, filters_on, next_due
from ecrm_interaction.reports import REPORTS
from ecrm_interaction.reports.base import MAX_DAYS, Report
from ecrm_interaction.storage import report_subscriptions as subscriptions
from ecrm_interaction.storage import saved_reports
from ecrm_interaction.storage.models import Dashboard, ReportSubscription, SavedReport

IdPath = Annotated[str, FastApiPath(min_length=1, max_length=36)]
MAX_RECIPIENTS = 50
ROLLING = ("since", "until")


class SavedReportIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    report: str
    params: dict[str, str] = {}
    """The report's filters as its query string gives them (``GET /v1/reports`` lists each
    report's); with ``days``, ``since`` and ``until`` are left out: the range rolls."""
    days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    """A rolling range: the last ``days`` days up to the day it is shown or sent."""

    @field_validator("report")
    @classmethod
    def _known(cls, report: str) -> str:
        if report not in REPORTS:
            raise ValueError(f"no report named {report!r}; the reports are {', '.join(REPORTS)}")
        return report


class SavedReportView(BaseModel):
    id: str
    name: str
    report: str
    params: dict[str, Any]
    days: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class DashboardIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    reports: list[str] = Field(default=[], max_length=30)
    """Saved report ids, in the order they are shown."""


class DashboardView(BaseModel):
    id: str
    name: str
    description: str
    reports: list[SavedReportView]
    created_by: str
    created_at: datetime
    updated_at: datetime


class SubscriptionIn(BaseModel):
    target: Literal["report", "dashboard"]
    target_id: str = Field(min_length=1, max_length=36)
    recipients: list[Annotated[str, Field(pattern=EMAIL, max_length=320)]] = Field(
        min_length=1, max_length=MAX_RECIPIENTS
    )
    cadence: Cadence = "weekly"
    hour: int = Field(default=7, ge=0, le=23)
    """The hour (UTC) it is sent at."""


class SubscriptionView(BaseModel):
    id: str
    target: str
    target_id: str
    recipients: list[str]
    cadence: str
    hour: int
    enabled: bool
    next_due_at: datetime
    last_sent_at: datetime | None
    last_error: str | None
    created_by: str


def report_view(row: SavedReport) -> SavedReportView:
    return SavedReportView(id=row.id, name=row.name, report=row.report, params=orjson.loads(row.params), days=row.days,
                           created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at)  # fmt: skip


def subscription_view(row: ReportSubscription) -> SubscriptionView:
    return SubscriptionView(
        id=row.id, target=row.target, target_id=row.target_id, recipients=orjson.loads(row.recipients),
        cadence=row.cadence, hour=row.hour, enabled=row.enabled, next_due_at=row.next_due_at,
        last_sent_at=row.last_sent_at, last_error=row.last_error, created_by=row.created_by,
    )  # fmt: skip


def _invalid(errors: list[dict[str, str]]) -> HTTPException:
    return HTTPException(422, {"code": "invalid_request", "message": errors[0]["message"], "errors": errors})


def checked_filters(body: SavedReportIn) -> dict[str, str]:
    """The filters to keep (those of a rolling range left out), refused with each bad one named
    ``params.<filter>`` as the report would refuse it."""
    params = {k: v for k, v in body.params.items() if body.days is None or k not in ROLLING}
    try:
        REPORTS[body.report].Params.model_validate(filters_on(params, body.days, datetime.now(UTC).date()))
    except ValidationError as exc:
        raise _invalid([{"field": ".".join(("params", *(str(p) for p in e["loc"]))), "rule": e["type"],
                         "message": e["msg"]} for e in exc.errors(include_url=False)]) from exc  # fmt: skip
    return params


def _found_report(session: Any, report_id: str) -> SavedReport:
    row = saved_reports.get_report(session, report_id)
    if row is None:
        raise HTTPException(404, f"no saved report {report_id}")
    return row


def _found_dashboard(session: Any, dashboard_id: str) -> Dashboard:
    row = saved_reports.get_dashboard(session, dashboard_id)
    if row is None:
        raise HTTPException(404, f"no dashboard {dashboard_id}")
    return row


def dashboard_view(session: Any, row: Dashboard) -> DashboardView:
    found = [saved_reports.get_report(session, i) for i in orjson.loads(row.reports)]
    return DashboardView(id=row.id, name=row.name, description=row.description,
                         reports=[report_view(r) for r in found if r is not None], created_by=row.created_by,
                         created_at=row.created_at, updated_at=row.updated_at)  # fmt: skip


def router(dispatcher: Dispatcher | None) -> APIRouter:
    """``dispatcher``: with ClickHouse configured, it sends the subscriptions (and ``send`` now)."""
    routes = APIRouter(tags=["reports"])

    @routes.get("/v1/saved-reports")
    def list_saved(_who: Viewer, session: SessionDep) -> list[SavedReportView]:
        return [report_view(r) for r in saved_reports.list_reports(session)]

    @routes.post("/v1/saved-reports", status_code=201)
    def create_saved(body: SavedReportIn, who: Marketer, session: SessionDep) -> SavedReportView:
        row = saved_reports.save_report(
            session, None, body.name, body.report, checked_filters(body), body.days, who.name
        )
        return report_view(row)

    @routes.get("/v1/saved-reports/{report_id}")
    def get_saved(report_id: IdPath, _who: Viewer, session: SessionDep) -> SavedReportView:
        return report_view(_found_report(session, report_id))

    @routes.put("/v1/saved-reports/{report_id}")
    def put_saved(report_id: IdPath, body: SavedReportIn, who: Marketer, session: SessionDep) -> SavedReportView:
        _found_report(session, report_id)
        params = checked_filters(body)
        return report_view(saved_reports.save_report(session, report_id, body.name, body.report, params, body.days,
                                                     who.name))  # fmt: skip

    @routes.delete("/v1/saved-reports/{report_id}", status_code=204)
    def delete_saved(report_id: IdPath, who: Marketer, session: SessionDep) -> None:
        """Delete it (taken off the dashboards that show it; its subscriptions stop)."""
        if not saved_reports.delete_report(session, report_id, who.name):
            raise HTTPException(404, f"no saved report {report_id}")
        for row in subscriptions.list_subscriptions(session, "report", report_id):
            subscriptions.remove(session, row.id, who.name)

    @routes.get("/v1/saved-reports/{report_id}/result")
    async def saved_result(report_id: IdPath, _who: Viewer, session: SessionDep, warehouse: WarehouseDep) -> Report:
        """The saved report computed now (a rolling range ends today)."""
        row = _found_report(session, report_id)
        kind = REPORTS[row.report]
        given = filters_on(orjson.loads(row.params), row.days, datetime.now(UTC).date())
        try:
            answer = await running.run(warehouse, kind, kind.Params.model_validate(given))
        except OperationalError as exc:
            raise HTTPException(503, "clickhouse_unavailable") from exc
        answer.title = row.name
        return answer

    @routes.get("/v1/dashboards")
    def list_dashboards(_who: Viewer, session: SessionDep) -> list[DashboardView]:
        return [dashboard_view(session, d) for d in saved_reports.list_dashboards(session)]

    def _checked_reports(session: Any, body: DashboardIn) -> None:
        missing = [(i, r) for i, r in enumerate(body.reports) if saved_reports.get_report(session, r) is None]
        if missing:
            raise _invalid([{"field": f"reports.{i}", "rule": "exists", "message": f"no saved report {r}"}
                            for i, r in missing])  # fmt: skip

    @routes.post("/v1/dashboards", status_code=201)
    def create_dashboard(body: DashboardIn, who: Marketer, session: SessionDep) -> DashboardView:
        _checked_reports(session, body)
        row = saved_reports.save_dashboard(session, None, body.name, body.description, body.reports, who.name)
        return dashboard_view(session, row)

    @routes.get("/v1/dashboards/{dashboard_id}")
    def get_dashboard(dashboard_id: IdPath, _who: Viewer, session: SessionDep) -> DashboardView:
        return dashboard_view(session, _found_dashboard(session, dashboard_id))

    @routes.put("/v1/dashboards/{dashboard_id}")
    def put_dashboard(dashboard_id: IdPath, body: DashboardIn, who: Marketer, session: SessionDep) -> DashboardView:
        _found_dashboard(session, dashboard_id)
        _checked_reports(session, body)
        row = saved_reports.save_dashboard(session, dashboard_id, body.name, body.description, body.reports, who.name)
        return dashboard_view(session, row)

    @routes.delete("/v1/dashboards/{dashboard_id}", status_code=204)
    def delete_dashboard(dashboard_id: IdPath, who: Marketer, session: SessionDep) -> None:
        if not saved_reports.delete_dashboard(session, dashboard_id, who.name):
            raise HTTPException(404, f"no dashboard {dashboard_id}")
        for row in subscriptions.list_subscriptions(session, "dashboard", dashboard_id):
            subscriptions.remove(session, row.id, who.name)

    @routes.get("/v1/report-subscriptions")
    def list_subscriptions(
        _who: Viewer, session: SessionDep, target: Literal["report", "dashboard"] | None = Query(None),
        target_id: str | None = Query(None, max_length=36),
    ) -> list[SubscriptionView]:  # fmt: skip
        return [subscription_view(r) for r in subscriptions.list_subscriptions(session, target, target_id)]

    @routes.post("/v1/report-subscriptions", status_code=201)
    def subscribe(body: SubscriptionIn, who: Marketer, session: SessionDep) -> SubscriptionView:
        """Send the saved report or dashboard to ``recipients`` from the next ``cadence`` slot on
        (daily, Mondays, or the 1st of the month, at ``hour`` UTC)."""
        exists = (saved_reports.get_report if body.target == "report" else saved_reports.get_dashboard)(
            session, body.target_id
        )
        if exists is None:
            raise _invalid([{"field": "target_id", "rule": "exists", "message": f"no {body.target} {body.target_id}"}])
        due = next_due(body.cadence, body.hour, datetime.now(UTC))
        row = subscriptions.add(
            session, body.target, body.target_id, body.recipients, body.cadence, body.hour, due, who.name
        )
        return subscription_view(row)

    @routes.delete("/v1/report-subscriptions/{subscription_id}", status_code=204)
    def unsubscribe(subscription_id: IdPath, who: Marketer, session: SessionDep) -> None:
        if not subscriptions.remove(session, subscription_id, who.name):
            raise HTTPException(404, f"no report subscription {subscription_id}")

    @routes.post("/v1/report-subscriptions/{subscription_id}/send")
    async def send_now(subscription_id: IdPath, _who: Marketer, session: SessionDep) -> dict[str, Any]:
        """Send an issue now (to check what the subscribers receive); the schedule is unchanged."""
        row = subscriptions.get(session, subscription_id)
        if row is None:
            raise HTTPException(404, f"no report subscription {subscription_id}")
        mail = None if dispatcher is None else dispatcher.report_mail
        if mail is None:
            raise HTTPException(503, "clickhouse_unavailable")
        session.expunge(row)
        try:
            sent = await mail.send(row, datetime.now(UTC))
        except NothingToSend as exc:
            raise HTTPException(409, str(exc)) from exc
        except OperationalError as exc:
            raise HTTPException(503, "clickhouse_unavailable") from exc
        except OSError as exc:  # the mail server refused or is down
            raise HTTPException(502, f"the mail server did not take the issue: {type(exc).__name__}") from exc
        return {"sent": sent, "recipients": orjson.loads(row.recipients)}

    return routes
