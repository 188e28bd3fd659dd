"""The copy of a sent email is rendered from the template version in force when it was sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import rules
from ecrm_interaction.storage.models import TemplateVersion


def test_the_version_in_force_at_a_moment_is_the_newest_saved_by_then(relational_store) -> None:
    store = relational_store
    first, second = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    for moment, text in ((first, "Hello {{ traits.first_name }}"), (second, "Hi {{ traits.first_name }}!")):
        store.write(rules.upsert_rules, [TemplateSpec(id="welcome", subject="Welcome", text=text)], [])

        def backdate(session, moment=moment, text=text) -> None:  # the save happened then
            session.execute(update(TemplateVersion).where(TemplateVersion.text_body == text).values(saved_at=moment))

        store.write(backdate)

    assert store.read(rules.template_in_force, "welcome", first - timedelta(days=1)) is None
    assert (
        store.read(rules.template_in_force, "welcome", first + timedelta(days=3)).text
        == "Hello {{ traits.first_name }}"
    )
    assert store.read(rules.template_in_force, "welcome", second).text == "Hi {{ traits.first_name }}!"
    assert store.read(rules.template_in_force, "other", second) is None
