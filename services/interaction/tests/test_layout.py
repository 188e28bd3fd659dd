"""The interaction service's rooms, and which may use which.

    console/ ◀─▶ api/ ─┬─▶ consumer/ ─┬─▶ storage/ ─▶ engine/
                        ├─▶ delivery/ ─┤       │         ▲
                        ├─▶ privacy/ ──┘       ▼         │
                        ├─▶ assistant/ ◀── storage/      │
                        └─▶ reports/ ◀── delivery/ ──────┘

``engine/`` is the pure rule engine: it imports no other room and no I/O library, so every
decision it makes can be tested with data alone. ``storage/`` holds one repository module per
aggregate and knows nothing of who calls it. ``consumer/`` (the Kafka shell and the intake),
``delivery/`` (carrying actions out) and ``privacy/`` sit on storage and engine and not on one
another. ``assistant/`` holds the website assistant's pure steps (matching a question to the articles,
the answer from the customer's data, business hours); like ``engine/`` it does no I/O, and storage
keeps its articles. ``reports/`` holds the reports: pure steps from filters to SQL and from rows to a report, and
the email of a report subscription; ``api/`` and ``delivery/`` run them.
``api/`` and ``__main__`` wire everything. ``console/`` (the staff console's pages) is
a shell over the API: it reads and changes only through API calls, so it imports only ``api/``
(the session cookie's names and the roles), never storage. A module that breaks these lines fails here,
naming the import to move.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ecrm_interaction"
ROOMS = ("engine", "assistant", "storage", "consumer", "delivery", "privacy", "reports", "api", "console")
MAY_USE: dict[str, set[str]] = {
    "engine": set(),
    "assistant": {"engine"},
    "storage": {"engine", "assistant"},
    "consumer": {"engine", "storage"},
    "delivery": {"engine", "storage", "reports"},
    "privacy": {"engine", "storage"},
    "reports": {"engine"},
    "api": {"engine", "assistant", "storage", "consumer", "delivery", "privacy", "reports", "console"},
    "console": {"api"},
}
CROSSINGS = {
    (
        "delivery",
        "ecrm_interaction.consumer.intake",
    ): "scheduled rules plan their firings through the intake, as the consumer does",
    ("delivery", "ecrm_interaction.api.services.reports"): "report subscriptions run the reports as the API does",
    ("delivery", "ecrm_interaction.api.services.warehouse"): "report subscriptions read ClickHouse as the API does",
    (
        "reports",
        "ecrm_interaction.api.services.score_explanations",
    ): "the RFM report scores on the scale the computed traits quote (one owner of the thresholds)",
}
"""The imports across rooms that are allowed by name, each with why."""
IO_LIBRARIES = {
    "sqlalchemy",
    "confluent_kafka",
    "arroyo",
    "httpx",
    "clickhouse_connect",
    "aiosmtplib",
    "smtplib",
    "fastapi",
    "starlette",
    "socket",
    "asyncio",
}
"""What the pure engine must not import: the shells own every connection."""


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "ecrm_interaction" and len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    return None


def test_every_module_lives_in_a_room() -> None:
    loose = sorted(
        p.name
        for p in PACKAGE.glob("*.py")
        if p.name not in {"__init__.py", "__main__.py", "settings.py", "metrics.py"}
    )
    assert not loose, f"move these modules into one of {ROOMS} (see this test's docstring): {loose}"


@pytest.mark.parametrize("room", ROOMS)
def test_a_room_uses_only_the_rooms_below_it(room: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for line, module in _imports(path):
            used = _room_of(module)
            if used is not None and used != room and used not in MAY_USE[room] and (room, module) not in CROSSINGS:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not wrong, f"{room}/ may use only {sorted(MAY_USE[room]) or 'itself'}: {wrong}"


@pytest.mark.parametrize("room", ["engine", "assistant"])
def test_the_pure_rooms_do_no_io(room: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for line, module in _imports(path):
            if module.split(".")[0] in IO_LIBRARIES or module in {"ecrm_interaction.settings"}:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not wrong, f"{room}/ is pure (data in, data out); move the I/O into a shell: {wrong}"
