"""Pages as HTML: the console's Jinja2 environment, its security headers and its error pages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ecrm_interaction.console.access import Staff

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""No inline script or style, nothing from another origin: what the console needs is served by it."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

NAV: tuple[tuple[str, str, str], ...] = (
    ("/console", "Home", "viewer"),
    ("/console/customers", "Customers", "viewer"),
    ("/console/segments", "Segments", "viewer"),
    ("/console/rules", "Rules", "viewer"),
    ("/console/templates", "Templates", "viewer"),
    ("/console/broadcasts", "Broadcasts", "viewer"),
    ("/console/cases", "Cases", "viewer"),
    ("/console/assistant", "Assistant", "viewer"),
    ("/console/loyalty", "Loyalty", "viewer"),
    ("/console/reports", "Reports", "viewer"),
    ("/console/data", "Data", "viewer"),
)
"""The navigation: path, label, least role (a link is shown only to who may open it)."""


def _when(value: str | datetime | None) -> str:
    """A timestamp as people read it: ``2026-12-03 17:40 UTC``."""
    if value in (None, ""):
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _number(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False)
environment.filters.update(when=_when, percent=_percent, number=_number)


def render(
    request: Request, template: str, context: dict[str, Any], *, staff: Staff | None = None, status: int = 200
) -> HTMLResponse:
    """The page ``template`` with ``context``; for an htmx request, ``template`` should be a fragment."""
    nav = [(path, label) for path, label, role in NAV if staff is not None and staff.may(role)]
    html = environment.get_template(template).render(
        request=request, staff=staff, nav=nav, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
