from pathlib import Path

import pytest
from interaction_factories import change, trigger
from pydantic import ValidationError

from ecrm_interaction.decide import decide
from ecrm_interaction.rendering import RenderError, render_email
from ecrm_interaction.rule_matching import RuleSpec, TemplateSpec, match_rules
from ecrm_interaction.rules_file import RulesFile, load_rules_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "rules.yaml"
WELCOME = RuleSpec(id="welcome", name="w", trigger_event="identify", template_id="t", once_per_customer=True)
ORDER = RuleSpec(id="order", name="o", trigger_event="Order Completed", template_id="t")
TEMPLATE = TemplateSpec(id="t", subject="Hi {{ traits.firstName | default('there') }}", text="{{ profile.email }}",
                        html="<p>{{ traits.firstName }}</p>")  # fmt: skip


def test_rule_fires_on_event_type_or_track_name() -> None:
    c = change(trigger("identify", message_id="a"), trigger("track", "Order Completed", message_id="b"),
               trigger("track", "identify", message_id="c"))  # fmt: skip
    matches = match_rules(c, [WELCOME, ORDER])
    assert [(m.rule.id, m.trigger.message_id) for m in matches] == [("welcome", "a"), ("order", "b")]
    assert matches[0].dedup_key == "welcome:u1"
    assert matches[1].dedup_key == "order:u1:b"


def test_once_per_customer_fires_once_per_change_and_every_event_rule_for_each() -> None:
    c = change(trigger("identify", message_id="a"), trigger("identify", message_id="b"))
    assert len(match_rules(c, [WELCOME])) == 1
    every = WELCOME.model_copy(update={"once_per_customer": False})
    assert [m.dedup_key for m in match_rules(c, [every])] == ["welcome:u1:a", "welcome:u1:b"]


def test_disabled_rules_never_fire() -> None:
    assert match_rules(change(trigger()), [WELCOME.model_copy(update={"enabled": False})]) == []


def test_rendering_uses_profile_and_escapes_html() -> None:
    c = change(trigger(), firstName="<b>Ada</b>")
    email = render_email(TEMPLATE, c.profile, c.triggers[0])
    assert email.subject == "Hi <b>Ada</b>"
    assert email.text == "ada@example.com"
    assert email.html == "<p>&lt;b&gt;Ada&lt;/b&gt;</p>"


def test_missing_traits_render_defaults_not_errors() -> None:
    c = change(trigger())
    assert render_email(TEMPLATE, c.profile, c.triggers[0]).subject == "Hi there"


def test_sandbox_refuses_python_internals() -> None:
    evil = TemplateSpec(id="e", subject="x", text="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    c = change(trigger())
    with pytest.raises(RenderError):
        render_email(evil, c.profile, c.triggers[0])


def test_decide_skips_customers_without_email_and_missing_templates() -> None:
    no_email = decide(change(trigger(), email=None), [WELCOME], {"t": TEMPLATE})
    assert [d.skip_reason for d in no_email] == ["no_email_address"]
    missing = decide(change(trigger()), [WELCOME], {})
    assert [d.skip_reason for d in missing] == ["template_missing"]
    ok = decide(change(trigger(), firstName="Ada"), [WELCOME], {"t": TEMPLATE})
    assert ok[0].skip_reason is None and ok[0].recipient == "ada@example.com" and ok[0].email.subject == "Hi Ada"


def test_example_rules_file_loads_and_renders() -> None:
    rules = load_rules_file(EXAMPLES)
    templates = {t.id: t for t in rules.templates}
    c = change(trigger("track", "Order Completed", order_id="o-9", total=12.5), firstName="Ada")
    [decision] = decide(c, rules.rules, templates)
    assert decision.match.rule.id == "thanks-for-order"
    assert "o-9" in decision.email.subject and "12.5 EUR" in decision.email.text


def test_rules_file_refuses_unknown_templates() -> None:
    with pytest.raises(ValidationError, match="not defined"):
        RulesFile.model_validate({"rules": [WELCOME.model_dump()]})
