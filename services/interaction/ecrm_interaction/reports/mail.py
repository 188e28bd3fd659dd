"""The email of a report subscription: the reports in HTML with their charts as inline images,
the same in plain text, and each report's table as a CSV attachment. Pure: the caller runs the
reports, draws the charts and sends the message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from jinja2 import Environment, select_autoescape

from ecrm_interaction.reports.base import Report


@dataclass(frozen=True, slots=True)
class Issue:
    """One report of an issue: the answer, its chart (PNG, or None), its CSV and where the console shows it."""

    report: Report
    chart_png: bytes | None
    csv: str
    filename: str
    link: str


_HTML = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string("""\
<!doctype html>
<html><body style="font-family: sans-serif; color: #1d1d1f; max-width: 760px">
<h1 style="font-size: 20px">{{ title }}</h1>
<p>{{ period }}</p>
{% for item in items %}
<h2 style="font-size: 16px; margin-top: 28px"><a href="{{ item.link }}">{{ item.report.title }}</a></h2>
{% if item.cid %}
<img src="cid:{{ item.cid }}" alt="{{ item.report.title }}" width="760" style="max-width: 100%">
{% endif %}
<table style="border-collapse: collapse; font-size: 13px; margin-top: 8px">
<tr>{% for c in item.report.columns %}
<th style="text-align: left; border-bottom: 1px solid #ccc; padding: 3px 6px">{{ c.label }}</th>
{% endfor %}</tr>
{% for row in item.rows %}<tr>{% for value in row %}
<td style="padding: 3px 6px; border-bottom: 1px solid #eee">{{ value }}</td>
{% endfor %}</tr>{% endfor %}
</table>
{% if item.more %}<p style="font-size: 12px">… and {{ item.more }} more rows in {{ item.filename }}.</p>{% endif %}
<details><summary>How it is counted</summary><p style="font-size: 12px">{{ item.report.definition }}</p></details>
{% endfor %}
<p style="font-size: 12px; color: #555">
You receive this because you are subscribed to it in the eCRM console: {{ manage }}</p>
</body></html>""")
ROWS_IN_BODY = 15
"""Table rows an email shows of each report (its CSV has them all)."""


def cell_text(value: object, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate" and isinstance(value, int | float):
        return f"{value * 100:.1f} %"
    if kind == "money" and isinstance(value, int | float):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.2f}" if not value.is_integer() else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _rows(report: Report) -> list[list[str]]:
    return [[cell_text(row.get(c.key), c.kind) for c in report.columns] for row in report.rows[:ROWS_IN_BODY]]


def compose_issue(title: str, period: str, items: list[Issue], *, sender: str, recipient: str, manage: str,
                  now: datetime, domain: str = "ecrm.local") -> EmailMessage:  # fmt: skip
    """The issue's message to ``recipient``: text and HTML alternatives (the charts inline, by
    Content-ID), and the CSVs attached."""
    message = EmailMessage()
    message["Subject"] = f"{title} · {period}"
    message["From"], message["To"] = sender, recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("report", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    text = [title, period, ""]
    for item in items:
        text += [item.report.title, item.link]
        text += ["  " + " | ".join(c.label for c in item.report.columns)]
        text += ["  " + " | ".join(row) for row in _rows(item.report)]
        text += [""]
    text += [f"Manage your subscriptions: {manage}"]
    message.set_content("\n".join(text))
    cids = [make_msgid("chart", domain=domain)[1:-1] if item.chart_png else None for item in items]
    html = _HTML.render(
        title=title, period=period, manage=manage,
        items=[{"report": i.report, "cid": cid, "rows": _rows(i.report), "link": i.link, "filename": i.filename,
                "more": max(0, len(i.report.rows) - ROWS_IN_BODY)} for i, cid in zip(items, cids, strict=True)],
    )  # fmt: skip
    message.add_alternative(html, subtype="html")
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for item, cid in zip(items, cids, strict=True):
        if item.chart_png and cid:
            html_part.add_related(item.chart_png, "image", "png", cid=f"<{cid}>", filename=f"{item.filename[:-4]}.png")
    for item in items:
        message.add_attachment(item.csv.encode(), maintype="text", subtype="csv", filename=item.filename)
    return message
