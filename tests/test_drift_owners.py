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


def test_item_similarity_is_computed_only_by_its_owner_the_aggregator() -> None:
    writers = [
        str(path.relative_to(ROOT))
        for path in SERVICE_CODE
        if "INTO {db}.item_similarity" in path.read_text() or "INTO {database}.item_similarity" in path.read_text()
    ]
    assert writers == ["services/aggregator/ecrm_aggregator/item_similarity.py"], (
        "item_similarity is the aggregator's table (migration 0007) and ecrm_aggregator.item_similarity its only "
        f"writer; other services read it. Writers found: {writers}"
    )
