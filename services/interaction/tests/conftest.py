import pytest

from ecrm_interaction.storage.store import Store, make_engine, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def relational_store(request, tmp_path):
    """A migrated store on SQLite, and on the session's PostgreSQL (a fresh database)."""
    url = f"sqlite:///{tmp_path}/db.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield Store(engine)
    engine.dispose()
