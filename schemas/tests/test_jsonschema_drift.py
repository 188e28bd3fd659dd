from ecrm_schemas.jsonschema import DEFAULT_DIR, build_schemas, render


def test_committed_json_schemas_match_the_models() -> None:
    stale = [
        name
        for name, schema in build_schemas().items()
        if not (DEFAULT_DIR / name).exists() or (DEFAULT_DIR / name).read_text() != render(schema)
    ]
    committed = {str(p.relative_to(DEFAULT_DIR)) for p in DEFAULT_DIR.rglob("*.json")}
    orphans = committed - set(build_schemas())
    assert not stale and not orphans, (
        f"schemas/jsonschema is out of date (stale: {stale}, orphans: {sorted(orphans)}); "
        "run `uv run python -m ecrm_schemas jsonschema` and commit the result"
    )
