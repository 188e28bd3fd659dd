"""One owner per concept (issue 17): the ClickHouse client, item similarity, profile paths and
condition operators are each defined once; these tests fail, saying what to do, when a second
definition appears or a list is left behind."""

from pathlib import Path
from typing import get_args

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


def test_every_operator_and_combinator_has_a_python_evaluator_and_an_sql_translation() -> None:
    """ecrm_schemas.conditions declares the operators and combinators once; the interaction
    engine evaluates them in Python, the aggregator turns them into SQL. A new one must get both."""
    from ecrm_interaction.engine import conditions as python
    from ecrm_interaction.engine.rules import Comparison
    from ecrm_schemas.conditions import COMBINATORS, OPERATORS, CountOperator
    from ecrm_schemas.segment_sql import SQL_COMBINATORS, SQL_JOINERS, SQL_OPERATORS

    declared = set(OPERATORS)
    for name, implemented in (
        ("a Python evaluator (ecrm_interaction.engine.conditions.OPERATORS)", set(python.OPERATORS)),
        ("an SQL translation (ecrm_schemas.segment_sql.SQL_OPERATORS)", set(SQL_OPERATORS)),
    ):
        assert not declared - implemented, f"operators without {name}: {sorted(declared - implemented)}"
        assert not implemented - declared, f"{name} has operators ecrm_schemas.conditions does not declare"
    for name, implemented in (
        ("a Python evaluator (ecrm_interaction.engine.conditions.COMBINATORS)", set(python.COMBINATORS)),
        ("an SQL translation (ecrm_schemas.segment_sql.SQL_COMBINATORS)", set(SQL_COMBINATORS)),
        ("an SQL joiner (ecrm_schemas.segment_sql.SQL_JOINERS)", set(SQL_JOINERS)),
    ):
        assert set(COMBINATORS) == implemented, f"combinators without {name}: {set(COMBINATORS) ^ implemented}"
    subsets = {"CountOperator": set(get_args(CountOperator)), "rules.Comparison": set(get_args(Comparison))}
    for name, ops in subsets.items():
        assert ops <= declared, f"{name} uses operators ecrm_schemas.conditions.Operator lacks: {ops - declared}"


def test_profile_paths_are_parsed_only_by_ecrm_schemas_profile_paths() -> None:
    """The path grammar (``computed.``, ``traits.``, ``loyalty.``, ``<map>.``) is written once;
    evaluators go through parse_path/read instead of splitting prefixes themselves."""
    prefixes = ('startswith("computed.")', 'startswith("traits.")', 'startswith("loyalty.")',
                'removeprefix("computed.")', 'removeprefix("traits.")', 'removeprefix("loyalty.")',
                'startswith("event_counts.")')  # fmt: skip
    allowed = {"schemas/ecrm_schemas/profile_paths.py"}
    offenders = [
        f"{path.relative_to(ROOT)}: {prefix}"
        for path in SERVICE_CODE
        if str(path.relative_to(ROOT)) not in allowed
        for prefix in prefixes
        if prefix in path.read_text()
    ]
    assert not offenders, f"read profile paths with ecrm_schemas.profile_paths (parse_path, read): {offenders}"


def test_every_path_a_trait_trigger_accepts_is_one_profile_changes_report() -> None:
    """A trait trigger fires when ``ProfileChanged.changed`` names its path; a path the
    aggregator never reports there would be accepted and never fire."""
    from ecrm_aggregator.profile_folding import COMPARED_FIELDS
    from ecrm_aggregator.profile_state import TRAIT_NAMES
    from ecrm_schemas.profile_paths import PROFILE_FIELDS, computed_path, parse_path

    reported = set(COMPARED_FIELDS) | {computed_path(name) for name in TRAIT_NAMES}
    accepted = {path for path in PROFILE_FIELDS if parse_path(path).reported}
    assert not accepted - reported, (
        f"trait triggers accept {sorted(accepted - reported)}, which ecrm_aggregator.profile_folding never names "
        "in a change: report them in changes_between, or add them to ecrm_schemas.profile_paths.NOT_SEGMENTABLE"
    )
