"""Report subscriptions sent: at each due issue, the saved report (or each report of the
dashboard) is run on ClickHouse, drawn and mailed to the subscribers through the service's mail
server (:class:`~ecrm_interaction.delivery.smtp_sender.Mailer`, as every message).

An issue is claimed by moving the subscription's ``next_due_at`` on (a conditional update), so
two replicas never send the same one. When the reports cannot be run or the mail server refuses,
the issue is tried again :data:`RETRY_AFTER` later and the error is kept on the subscription.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
import structlog

from ecrm_interaction.api.services.reports import report_csv, run
from ecrm_interaction.engine.report_subscriptions import filters_on, next_due
from ecrm_interaction.reports import REPORTS
from ecrm_interaction.reports.mail import Issue, compose_issue
from ecrm_interaction.storage import report_subscriptions as subscriptions
from ecrm_interaction.storage import saved_reports

if TYPE_CHECKING:
    from ecrm_interaction.api.services.warehouse import Warehouse
    from ecrm_interaction.delivery.smtp_sender import Mailer
    from ecrm_interaction.storage.models import ReportSubscription, SavedReport
    from ecrm_interaction.storage.store import Store

log = structlog.get_logger()
RETRY_AFTER = timedelta(minutes=5)


class NothingToSend(LookupError):
    """The subscription's saved report or dashboard is gone, or holds no report."""


class ReportMail:
    def __init__(self, store: Store, warehouse: Warehouse, mailer: Mailer, public_url: str) -> None:
        self.store, self.warehouse, self.mailer = store, warehouse, mailer
        self.console = f"{public_url.rstrip('/')}/console"

    async def send_due(self, now: datetime) -> int:
        """Send every issue that is due; how many were sent."""
        sent = 0
        for row in await asyncio.to_thread(self.store.read, subscriptions.due, now):
            following = next_due(row.cadence, row.hour, now)  # type: ignore[arg-type]
            if not await asyncio.to_thread(self.store.write, subscriptions.claim, row.id, row.next_due_at, following):
                continue  # another replica has it
            try:
                await self.send(row, now)
            except Exception as exc:  # the next try will tell the subscriber's admin the same
                log.warning("report_issue_failed", subscription=row.id, error=type(exc).__name__)
                await asyncio.to_thread(self.store.write, subscriptions.claim, row.id, following, now + RETRY_AFTER)
                await asyncio.to_thread(
                    self.store.write, subscriptions.record, row.id, None, f"{type(exc).__name__}: {exc}"[:500]
                )
                continue
            sent += 1
        return sent

    async def send(self, row: ReportSubscription, now: datetime) -> int:
        """Send one issue of ``row`` now, to each recipient; how many messages went."""
        from ecrm_interaction.reports.charts import chart_png  # matplotlib: loaded when a first issue goes out

        title, saved = await asyncio.to_thread(self.store.read, _contents, row.target, row.target_id)
        day = (now - timedelta(days=1)).date()  # an issue reports on the days that are over
        items = []
        for report in saved:
            kind = REPORTS[report.report]
            given = filters_on(orjson.loads(report.params), report.days, day)
            answer = await run(self.warehouse, kind, kind.Params.model_validate(given))
            answer.title = f"{report.name} — {answer.title}" if report.name != answer.title else answer.title
            png = await asyncio.to_thread(chart_png, answer.chart, answer.title) if answer.chart else None
            link = f"{self.console}/reports/{report.report}?{urlencode(given)}"
            items.append(Issue(answer, png, report_csv(answer), f"{report.report}-{report.id[:8]}.csv", link))
        period = f"{items[0].report.filters['since']} to {items[0].report.filters['until']}" if items else ""
        recipients = orjson.loads(row.recipients)
        for recipient in recipients:
            message = compose_issue(title, period, items, sender=self.mailer.sender, recipient=recipient,
                                    manage=f"{self.console}/reports", now=now)  # fmt: skip
            await self.mailer.send(message)
        await asyncio.to_thread(self.store.write, subscriptions.record, row.id, now, None)
        log.info("report_issue_sent", subscription=row.id, recipients=len(recipients), reports=len(items))
        return len(recipients)


def _contents(session: Any, target: str, target_id: str) -> tuple[str, list[SavedReport]]:
    """The issue's title and its saved reports, in the dashboard's order."""
    if target == "report":
        report = saved_reports.get_report(session, target_id)
        if report is None:
            raise NothingToSend(f"saved report {target_id} no longer exists")
        session.expunge(report)
        return report.name, [report]
    dashboard = saved_reports.get_dashboard(session, target_id)
    if dashboard is None:
        raise NothingToSend(f"dashboard {target_id} no longer exists")
    found = [saved_reports.get_report(session, i) for i in orjson.loads(dashboard.reports)]
    reports = [r for r in found if r is not None]
    if not reports:
        raise NothingToSend(f"dashboard {dashboard.name!r} holds no report")
    for report in reports:
        session.expunge(report)
    return dashboard.name, reports
