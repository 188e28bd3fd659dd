"""Lists that must agree, checked so that a change to one fails until the other follows."""

import re
from pathlib import Path

from ecrm_aggregator.settings import AggregatorSettings
from ecrm_collector.settings import CollectorSettings
from ecrm_interaction.privacy.subjects import CLICKHOUSE_IDENTITY_COLUMNS
from ecrm_interaction.settings import InteractionSettings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    read = {
        name.upper()
        for settings in (CollectorSettings, AggregatorSettings, InteractionSettings)
        for name in settings.model_fields
    }
    assert read - documented == set(), f"settings missing from the README's configuration table: {read - documented}"
    assert documented - read == set(), f"README documents settings no service reads: {documented - read}"


def test_readme_shows_the_two_commands_and_ci_calls_make_test() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_no_topic_name_is_written_outside_the_registry() -> None:
    from ecrm_schemas.topics import ALL_TOPICS

    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or path.name == "topics.py" or "tests" in path.parts:
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(ROOT)}: {t.name}" for t in ALL_TOPICS if f'"{t.name}"' in text]
    assert not offenders, f"topic names must come from ecrm_schemas.topics: {offenders}"


def test_every_test_docs_reliability_cites_exists() -> None:
    """docs/reliability.md names the test behind each promise: a renamed or deleted test must show."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    cited = re.findall(r"`((?:[\w/]+/)?test_\w+\.py)::(test_\w+)`", text)
    assert len(cited) > 20
    # A bare `file.py::test` in a cell refers to the file of the previous full path in that cell.
    for cell in re.findall(r"\| ([^|]*::[^|]*) \|", text):
        directory = None
        for path, name in re.findall(r"`((?:[\w/]+/)?test_\w+\.py)::(test_\w+)`", cell):
            if "/" in path:
                directory = Path(path).parent
            full = ROOT / path if "/" in path else ROOT / (directory or Path("tests")) / path
            assert full.exists(), f"{path} (for {name}) does not exist"
            assert f"def {name}(" in full.read_text(), f"{path} has no test {name}"
    for bare in re.findall(r"`(::test_\w+)`", text):
        assert any(f"def {bare[2:]}(" in p.read_text() for p in ROOT.rglob("test_*.py") if ".venv" not in p.parts)


IDENTITY_COLUMNS = {"customer_id", "user_id", "anonymous_id", "merged_into"}


def test_every_clickhouse_table_that_names_a_customer_is_erased() -> None:
    """The migrated schema (its snapshot) against the tables and columns an erasure deletes by."""
    schema = (ROOT / "services/aggregator/tests/snapshots/schema.sql").read_text()
    naming: dict[str, set[str]] = {}
    for table, body in re.findall(r"^CREATE TABLE ecrm\.(\w+)\n\((.*?)\n\)", schema, flags=re.MULTILINE | re.DOTALL):
        columns = set(re.findall(r"^\s+`(\w+)`", body, flags=re.MULTILINE)) & IDENTITY_COLUMNS
        if columns:
            naming[table] = columns
    assert "events" in naming and "profiles" in naming, "the snapshot was parsed"
    erased = {table: set(columns) for table, columns in CLICKHOUSE_IDENTITY_COLUMNS.items()}
    assert naming == erased


def test_the_rfm_report_names_its_cells_as_the_aggregator_names_its_segments() -> None:
    from ecrm_aggregator.computed_traits import RFM_SEGMENTS
    from ecrm_interaction.reports.rfm import CELLS

    assert CELLS == RFM_SEGMENTS, "reports/rfm.py CELLS must be the aggregator's RFM_SEGMENTS grid: copy it again"


def test_every_backfill_of_a_materialized_view_selects_what_the_view_does() -> None:
    """A view of a migration fills its table from now on and the migration's INSERT … SELECT
    with the rows already stored: the two SELECTs must be one, or old rows differ from new."""
    from ecrm_aggregator.migrate import load_migrations

    for migration in load_migrations():
        statements = migration.statements("db")
        views = {m[1]: s[m.end() :].strip() for s in statements
                 if (m := re.match(r"CREATE MATERIALIZED VIEW IF NOT EXISTS db\.\w+ TO (db\.\w+) AS", s))}  # fmt: skip
        for statement in statements:
            if match := re.match(r"INSERT INTO (db\.\w+)\s+", statement):
                assert match[1] in views, f"{migration.name}: {match[1]} is backfilled but no view fills it"
                assert statement[match.end() :].strip() == views[match[1]], (
                    f"{migration.name}: the backfill of {match[1]} selects other rows than its view"
                )
