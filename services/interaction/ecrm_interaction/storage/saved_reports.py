"""Saved reports and dashboards. Functions take the session; the caller owns the transaction."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.storage import audit
from ecrm_interaction.storage.models import Dashboard, SavedReport


def list_reports(session: Session) -> list[SavedReport]:
    return list(session.scalars(select(SavedReport).order_by(SavedReport.name, SavedReport.id)))


def get_report(session: Session, report_id: str) -> SavedReport | None:
    return session.get(SavedReport, report_id)


def save_report(session: Session, report_id: str | None, name: str, report: str, params: dict[str, Any],
                days: int | None, actor: str) -> SavedReport:  # fmt: skip
    """Create (``report_id`` None) or replace a saved report; audited."""
    row = session.get(SavedReport, report_id) if report_id else None
    if row is None:
        row = SavedReport(id=report_id or str(uuid.uuid4()), created_by=actor)
        session.add(row)
    row.name, row.report, row.params, row.days = name, report, orjson.dumps(params).decode(), days
    session.flush()
    audit.record(session, actor, "save", "saved_report", row.id, {"name": name, "report": report})
    return row


def delete_report(session: Session, report_id: str, actor: str) -> bool:
    row = session.get(SavedReport, report_id)
    if row is None:
        return False
    for dashboard in session.scalars(select(Dashboard)):
        ids = orjson.loads(dashboard.reports)
        if report_id in ids:
            dashboard.reports = orjson.dumps([i for i in ids if i != report_id]).decode()
    session.delete(row)
    audit.record(session, actor, "delete", "saved_report", report_id, {})
    session.flush()
    return True


def list_dashboards(session: Session) -> list[Dashboard]:
    return list(session.scalars(select(Dashboard).order_by(Dashboard.name, Dashboard.id)))


def get_dashboard(session: Session, dashboard_id: str) -> Dashboard | None:
    return session.get(Dashboard, dashboard_id)


def save_dashboard(session: Session, dashboard_id: str | None, name: str, description: str, reports: list[str],
                   actor: str) -> Dashboard:  # fmt: skip
    row = session.get(Dashboard, dashboard_id) if dashboard_id else None
    if row is None:
        row = Dashboard(id=dashboard_id or str(uuid.uuid4()), created_by=actor)
        session.add(row)
    row.name, row.description, row.reports = name, description, orjson.dumps(reports).decode()
    session.flush()
    audit.record(session, actor, "save", "dashboard", row.id, {"name": name, "reports": reports})
    return row


def delete_dashboard(session: Session, dashboard_id: str, actor: str) -> bool:
    row = session.get(Dashboard, dashboard_id)
    if row is None:
        return False
    session.delete(row)
    audit.record(session, actor, "delete", "dashboard", dashboard_id, {})
    session.flush()
    return True
