"""Rules files and message rendering (pure)."""

from pathlib import Path

import pytest
from interaction_factories import change, trigger
from pydantic import ValidationError

from ecrm_interaction.engine.rendering import (
    RenderedEmail,
    RenderError,
    add_tracking,
    message_context,
    render_email,
    render_text,
)
from ecrm_interaction.engine.rules import RuleSpec, TemplateSpec
from ecrm_interaction.engine.rules_file import RulesFile, load_rules_file, parse_rules
from ecrm_schemas.tracking import verify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "rules.yaml"
TEMPLATE = TemplateSpec(id="t", subject="Hi {{ traits.firstName | default('there') }}", text="{{ profile.email }}",
                        html="<p>{{ traits.firstName }}</p>")  # fmt: skip


def _context(**traits):
    c = change(trigger("track", "Order Completed", order_id="o-9", total=12.5), **traits)
    payload = {"profile": c.profile.model_dump(mode="json"), "trigger": c.triggers[0].model_dump(mode="json"),
               "reason": "because", "rule_name": "Thanks", "reward_code": "ABCD-EFGH-IJKL"}  # fmt: skip
    return message_context(payload, rule_id="r", recommendations=[{"product_id": "p7"}], unsubscribe_url="https://u/x")


def test_a_template_compiled_once_renders_each_context_and_part_apart() -> None:
    same = TemplateSpec(id="s", subject="{{ traits.firstName }}", text="{{ traits.firstName }}",
                        html="{{ traits.firstName }}")  # fmt: skip
    first, second = (render_email(same, _context(firstName=name)) for name in ("<i>Ada</i>", "Bo"))
    assert (first.text, first.html) == ("<i>Ada</i>", "&lt;i&gt;Ada&lt;/i&gt;")  # the text part is never escaped
    assert (second.subject, second.text, second.html) == ("Bo", "Bo", "Bo")


def test_rendering_uses_profile_event_and_escapes_html() -> None:
    email = render_email(TEMPLATE, _context(firstName="<b>Ada</b>"))
    assert email.subject == "Hi <b>Ada</b>" and email.text == "ada@example.com"
    assert email.html == "<p>&lt;b&gt;Ada&lt;/b&gt;</p>"
    everything = TemplateSpec(
        id="e",
        subject="{{ event.properties.order_id }} {{ rule.name }}",
        text="{{ recommendations[0].product_id }} {{ reward.code }} {{ unsubscribe_url }}",
    )
    rendered = render_email(everything, _context())
    assert rendered.subject == "o-9 Thanks" and rendered.text == "p7 ABCD-EFGH-IJKL https://u/x"


def test_missing_traits_render_defaults_not_errors() -> None:
    assert render_email(TEMPLATE, _context()).subject == "Hi there"


@pytest.mark.parametrize("evil", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% set x = traits.update({'a': 1}) %}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ traits.pop('firstName') }}",
    "{% set _ = traits.__setitem__('a', 2) %}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{% extends '/etc/passwd' %}",
    "{% for x in range(10**9) %}{% endfor %}",  # an OverflowError: was not a RenderError
    "{{ 'x' * 10**9 }}",  # a memory bomb
    "{{ [1] * 10**9 }}",
    "{{ 2 ** (10**6) }}",  # Jinja reads 2 ** 10**6 as (2 ** 10) ** 6
    "{{ 1 / 0 }}",
    "{{ traits.firstName + 1 }}",
    "{{ (10**100) ** 100 }}",  # 10,001 digits: more than Python turns into a string
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
])  # fmt: skip
def test_the_sandbox_refuses_escapes_and_mutation(evil) -> None:
    with pytest.raises(RenderError):
        render_email(TemplateSpec(id="e", subject="x", text=evil), _context())
    with pytest.raises(RenderError):
        render_text(evil, _context())


@pytest.mark.parametrize("harmless", [
    "{{ profile.__class__ }}{{ cycler.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ 'a'|attr('__class__') }}",
    "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ joiner.__init__.__globals__ }}{{ namespace.__init__.__globals__ }}",
    "{{ '%s'|format(traits.__class__) }}{{ '{0.__class__}'.format(traits) }}",
])  # fmt: skip
def test_unsafe_attributes_render_as_nothing(harmless: str) -> None:
    assert render_text(f"[{harmless}]", _context()) == "[]"


def test_bounded_repetition_and_powers_still_work() -> None:
    assert render_text("{{ '-' * 3 }}{{ 2 ** 10 }}{{ [0] * 2 }}", _context()) == "---1024[0, 0]"


def test_links_go_through_the_signed_click_redirect_and_a_pixel_is_added() -> None:
    from ecrm_schemas.tracking import TrackingToken, sign

    def click(url: str) -> str:
        return "https://collector/v1/e/c/" + sign(TrackingToken(email_id="e1", customer="u1", url=url), "k")

    email = RenderedEmail("s", "t", '<html><body><a href="https://shop.example.com/p?a=1&amp;b=2">x</a></body></html>')
    tracked = add_tracking(email, click, "https://collector/v1/e/o/tok.gif")
    assert tracked.html is not None and "https://shop.example.com" not in tracked.html.split("/v1/e/c/")[0]
    token = tracked.html.split("/v1/e/c/")[1].split('"')[0]
    assert verify(token, "k").url == "https://shop.example.com/p?a=1&b=2"
    assert tracked.html.index("/v1/e/o/tok.gif") < tracked.html.index("</body>")
    assert add_tracking(RenderedEmail("s", "t", None), click, "p").html is None


def test_the_example_rules_file_loads_and_renders() -> None:
    rules = load_rules_file(EXAMPLES)
    templates = {t.id: t for t in rules.templates}
    assert {r.id for r in rules.rules} >= {"welcome-on-first-identify", "cart-reminder", "gold-reward"}
    assert rules.loyalty is not None
    email = render_email(templates["order-thanks"], _context(firstName="Ada"))
    assert "o-9" in email.subject and "12.5 EUR" in email.text and "p7" in email.text


def test_rules_files_refuse_unknown_templates_and_accept_the_first_versions_shape() -> None:
    legacy = {"id": "w", "name": "W", "trigger_event": "identify", "template_id": "t", "once_per_customer": True}
    assert RuleSpec.model_validate(legacy).actions[0].template == "t"  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="not defined"):
        RulesFile.model_validate({"rules": [legacy]})
    with pytest.raises(ValidationError):
        parse_rules("rules:\n  - {id: x, name: X, trigger: {kind: event, event: a}, actions: []}")


def test_a_template_with_a_syntax_error_is_refused_naming_the_field_and_line() -> None:
    with pytest.raises(ValidationError) as caught:
        TemplateSpec(id="t", subject="ok", text="ok", html="<p>\n\n{% for x in y %}</p>")
    [error] = caught.value.errors()
    assert error["loc"] == ("html",) and error["type"] == "template_syntax" and "line 3" in error["msg"]
    with pytest.raises(ValidationError, match="template_syntax"):
        parse_rules("templates: [{id: t, subject: '{{ a.', text: x}]")


def test_money_renders_with_two_decimals_and_a_currency_filter() -> None:
    c = change(trigger("track", "Order Completed", total=1234.5, currency="EUR"), revenue="200.0000")
    payload = {"profile": {**c.profile.model_dump(mode="json"), "revenue": "200.0000", "refunded": "0.0000"},
               "trigger": c.triggers[0].model_dump(mode="json")}  # fmt: skip
    context = message_context(payload, rule_id="r")
    assert render_text("{{ profile.revenue }} {{ profile.refunded }}", context) == "200.00 0.00"
    assert render_text("{% if profile.revenue > 100 %}big{% endif %}", context) == "big"
    assert render_text("{{ event.properties.total | money }}", context) == "1,234.50"
    assert render_text("{{ event.properties.total | money(event.properties.currency) }}", context) == "€1,234.50"
    assert render_text("{{ profile.revenue | money('EUR', 'de_DE') }}", context) == "200,00\xa0€"
    assert render_text("{{ traits.nothing | money('EUR') }}", context) == ""
    with pytest.raises(RenderError):
        render_text("{{ 'lots' | money }}", context)


def test_load_rules_names_the_field_rule_and_line_of_a_broken_template(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from ecrm_interaction.__main__ import cli

    path = tmp_path / "rules.yaml"
    path.write_text('templates:\n  - {id: t, subject: Hi, text: "a\\n{% if x %}"}\n')
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/i.db")
    result = CliRunner().invoke(cli, ["load-rules", str(path)])
    assert result.exit_code == 2, result.output
    assert "templates.0.text: template_syntax: template syntax error on line 2" in " ".join(result.output.split())
