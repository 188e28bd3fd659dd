"""CSV as the API's exports write it: cells a spreadsheet will not run as formulas."""

from __future__ import annotations

import csv
import io
from typing import Any


def safe_cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP's CSV injection advice)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def as_csv(columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> str:
    """``rows`` as CSV: a header of the labels, then each row's values by key (empty for None;
    text made :func:`safe_cell`, numbers as they are)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(label) for _, label in columns])
    for row in rows:
        values = (row.get(key) for key, _ in columns)
        writer.writerow(["" if v is None else safe_cell(v) if isinstance(v, str) else v for v in values])
    return out.getvalue()
