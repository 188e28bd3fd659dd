"""Replicas starting together load the same rules file: the one that loses the insert race tries again."""

from sqlalchemy.exc import IntegrityError

from ecrm_interaction.__main__ import _load_at_start
from ecrm_interaction.storage.store import Store, make_engine, migrate

RULES = """
templates: [{id: w, subject: "Welcome", text: "Hi"}]
rules:
  - {id: w, name: W, trigger: {kind: event, event: identify}, actions: [{kind: email, template: w}]}
"""


class LosesTheFirstRace(Store):
    """The first load meets the unique key another replica's insert just took (as PostgreSQL reports it)."""

    attempts = 0

    def upsert_rules(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.attempts += 1
        if self.attempts == 1:
            super().upsert_rules(*args, **kwargs)  # the other replica's rows
            raise IntegrityError("INSERT INTO email_templates", {}, Exception("duplicate key: email_templates_pkey"))
        super().upsert_rules(*args, **kwargs)


def test_a_replica_that_loses_the_rules_file_race_loads_it_again_instead_of_dying(tmp_path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    engine = make_engine(f"sqlite:///{tmp_path}/interaction.db")
    migrate(engine)
    store = LosesTheFirstRace(engine)
    _load_at_start(store, tmp_path / "rules.yaml")
    assert store.attempts == 2 and [r.id for r in store.all_rules()] == ["w"]
