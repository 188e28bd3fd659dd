"""One owner per concept (issue 17): the ClickHouse client, item similarity, profile paths and
condition operators are each defined once; these tests fail, saying what to do, when a second
definition appears or a list is left behind."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE_CODE = [
    path
    for top in ("schemas", "services")
    for path in (ROOT / top).glob("**/*.py")
    if ".venv" not in path.parts and "tests" not in path.parts
]


def test_the_clickhouse_client_is_built_in_one_place() -> None:
    builders = [
        str(path.relative_to(ROOT)) for path in SERVICE_CODE if "clickhouse_connect.get_client(" in path.read_text()
    ]
    assert builders == ["schemas/ecrm_schemas/clickhouse.py"], (
        f"build ClickHouse clients with ecrm_schemas.clickhouse.clickhouse_client, not in {builders}"
    )
