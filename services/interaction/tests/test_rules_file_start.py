"""Replicas starting together load the same rules file: the one that loses the insert race tries again."""

from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from ecrm_interaction.__main__ import _load_at_start
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store, make_engine, migrate

RULES = """
templates: [{id: w, subject: "Welcome", text: "Hi"}]
rules:
  - {id: w, name: W, trigger: {kind: event, event: identify}, actions: [{kind: email, template: w}]}
"""


def test_a_replica_that_loses_the_rules_file_race_loads_it_again_instead_of_dying(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    engine = make_engine(f"sqlite:///{tmp_path}/interaction.db")
    migrate(engine)
    store = Store(engine)
    upsert, attempts = rule_store.upsert_rules, []

    def loses_the_first_race(*args: Any, **kwargs: Any) -> None:
        """The first load meets the unique key another replica's insert just took (as PostgreSQL reports it)."""
        attempts.append(1)
        if len(attempts) == 1:
            store.write(upsert, *args[1:], **kwargs)  # the other replica's rows
            raise IntegrityError("INSERT INTO email_templates", {}, Exception("duplicate key: email_templates_pkey"))
        upsert(*args, **kwargs)

    monkeypatch.setattr(rule_store, "upsert_rules", loses_the_first_race)
    _load_at_start(store, tmp_path / "rules.yaml")
    assert len(attempts) == 2 and [r.id for r in store.read(rule_store.all_rules)] == ["w"]
