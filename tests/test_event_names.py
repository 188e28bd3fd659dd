"""Catalogued event names have one owner, :class:`ecrm_schemas.catalog.CatalogEvent`: service
code names them by member, so a renamed or removed event fails to import instead of silently
matching nothing."""

import ast
from collections.abc import Iterator
from pathlib import Path

from ecrm_schemas.catalog import CATALOG, CatalogEvent

ROOT = Path(__file__).resolve().parent.parent
SERVICE_CODE = ("services/*/ecrm_*/**/*.py", "deploy/embedded/ecrm_embedded/**/*.py", "schemas/ecrm_schemas/**/*.py")
OWNER = ROOT / "schemas" / "ecrm_schemas" / "catalog.py"


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of string constants that are statements of their own: docstrings of modules,
    classes and functions, and the attribute docstrings under assignments."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def event_name_literals(source: str) -> Iterator[tuple[int, CatalogEvent]]:
    """(line, member) of every string constant in ``source`` that spells a catalogued event name."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = [
        (node.lineno, node.col_offset, CatalogEvent(node.value))
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        if node.value in CATALOG
    ]
    for line, _, member in sorted(found):
        yield line, member


def test_no_catalogued_event_name_is_written_as_a_string_in_service_code() -> None:
    paths = sorted({p for pattern in SERVICE_CODE for p in ROOT.glob(pattern)} - {OWNER})
    assert len(paths) > 50, "the glob found no service code: did the layout move?"
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {member.value!r} → CatalogEvent.{member.name}"
        for path in paths
        if "tests" not in path.relative_to(ROOT).parts
        for line, member in event_name_literals(path.read_text())
    ]
    assert not offenders, (
        "catalogued event names are written as strings; use the member of ecrm_schemas.catalog.CatalogEvent "
        "(from ecrm_schemas.catalog import CatalogEvent):\n  " + "\n  ".join(offenders)
    )


def test_the_check_sees_literals_and_ignores_docstrings() -> None:
    source = '''
"""Module docstring naming Order Completed."""
def f(event):
    """Order Completed"""
    x = 1
    """Unsubscribed"""
    return event == "Order Completed" or {"Unsubscribed": 1} or "Order completed"
'''
    assert list(event_name_literals(source)) == [(7, CatalogEvent.ORDER_COMPLETED), (7, CatalogEvent.UNSUBSCRIBED)]
