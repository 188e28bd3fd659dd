"""The console's rules pages (in-process, SQLite): the list with each rule's figures, the
editor's inline errors naming the field (nothing saved), the dry run's verdict and rendered
message, enable/disable, the history with before/after, and who may do what."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from interaction_factories import change, trigger

from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.engine.rules import LoyaltyProgram, TemplateSpec
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import Action, SkippedDecision

SPEC = """\
trigger: {kind: event, event: Product Added}
actions:
  - {kind: email, template: hello}
"""


@pytest.fixture
def store(console_app):
    _app, store = console_app
    hello = TemplateSpec(id="hello", subject="Hi {{ traits.firstName }}", text="Hello {{ traits.firstName }}!",
                         html="<p style='color:red'>Hello <b>{{ traits.firstName }}</b></p>")  # fmt: skip
    store.write(rule_store.upsert_rules, [hello], [], "test")
    with store.sessions.begin() as session:
        IntakeStep(store, "s").profile_change(session, change(trigger(message_id="m0"), firstName="Ada"), [],
                                              LoyaltyProgram(), datetime.now(UTC), Intake())  # fmt: skip
    return store


def _form(client, **fields) -> dict[str, str]:
    return {"csrf_token": client.csrf, **fields}


def _action(rule_id: str, status: str, reason: str | None = None, customer: str = "u1", cause: str = "m:1") -> Action:
    now = datetime.now(UTC)
    return Action(id=str(uuid.uuid4()), dedup_key=str(uuid.uuid4()), rule_id=rule_id, customer_id=customer,
                  kind="email", category="marketing", cause=cause, status=status, reason=reason, due_at=now,
                  payload="{}", created_at=now, updated_at=now)  # fmt: skip


async def test_a_marketer_creates_a_rule_and_the_list_shows_its_figures(console_as, store) -> None:
    marketer = await console_as("marketer")
    page = await marketer.get("/console/rules/new")
    assert page.status_code == 200 and 'name="spec"' in page.text
    created = await marketer.post("/console/rules/new", data=_form(marketer, id="greet", name="Greet", enabled="on",
                                                                    spec=SPEC))  # fmt: skip
    assert (created.status_code, created.headers["location"]) == (303, "/console/rules/greet?saved=1"), created.text
    with store.sessions.begin() as session:
        session.add_all([_action("greet", "sent", customer="u1", cause="m:1"),
                         _action("greet", "sent", customer="u2", cause="m:2"),
                         _action("greet", "suppressed", "no_consent", customer="u3", cause="m:3"),
                         _action("greet", "suppressed", "frequency_cap", customer="u4", cause="m:4")])  # fmt: skip
        now = datetime.now(UTC)
        session.add(SkippedDecision(id="s1", rule_id="greet", customer_id="u5", reason="cooldown", detail="cooling",
                                    cause="m:5", count=3, first_at=now, last_at=now))  # fmt: skip

    listed = await marketer.get("/console/rules")
    assert listed.status_code == 200
    row = re.search(r'<tr data-rule="greet">(.*?)</tr>', listed.text, re.S)[1]
    figure = dict(re.findall(r'data-figure="(\w+)">\s*(.*?)\s*</td>', row, re.S))
    assert (figure["triggered"], figure["sent"]) == ("7", "2")  # 4 firings acted on, 3 skipped
    assert "no_consent 1" in figure["suppressed"] and "cooldown 3" in figure["suppressed"]
    assert figure["opened"] == "—", "without ClickHouse the engagement is unknown, not zero"
    assert "not configured" in listed.text

    figures = (await marketer.get("/v1/rules/figures", params={"days": 7})).json()
    [greet] = [r for r in figures["rules"] if r["rule_id"] == "greet"]
    assert greet["suppressed"] == {"no_consent": 1, "frequency_cap": 1} and greet["skipped"] == {"cooldown": 3}
    assert figures["engagement"] == "clickhouse_unavailable" and greet["opened"] is None


@pytest.mark.parametrize(
    ("fields", "named", "says"),
    [
        ({"spec": "trigger: [unclosed"}, "Spec (YAML)", "not YAML"),
        ({"spec": "- a list"}, "Spec (YAML)", "must be a mapping"),
        ({"spec": "actions: [{kind: email, template: hello}]"}, "Spec (YAML)", "trigger"),
        ({"spec": SPEC.replace("template: hello", "template: missing")}, "Spec (YAML)", "do not exist"),
        ({"spec": SPEC.replace("Product Added", "")}, "Spec (YAML)", "trigger.event"),
        ({"id": "Not An Id"}, "Id", "pattern"),
        ({"name": ""}, "Name", "at least 1"),
    ],
)
async def test_bad_input_is_refused_inline_naming_the_field_and_nothing_is_saved(
    console_as, store, fields, named, says
) -> None:
    marketer = await console_as("marketer")
    form = {"id": "bad-rule", "name": "Bad", "enabled": "on", "spec": SPEC} | fields
    refused = await marketer.post("/console/rules/new", data=_form(marketer, **form))
    assert refused.status_code == 422, refused.text
    alerts = re.findall(r'<p id="e-\w+" class="error" role="alert">(.*?)</p>', refused.text, re.S)
    assert any(a.startswith(f"{named}:") and says in a for a in alerts), alerts
    assert form["spec"] in refused.text.replace("&#39;", "'").replace("&#34;", '"') or "&" in form["spec"]
    assert store.read(rule_store.all_rules) == [], "nothing was saved"


async def test_an_existing_rule_id_is_refused_on_the_id_field(console_as, store) -> None:
    marketer = await console_as("marketer")
    form = _form(marketer, id="twice", name="Twice", enabled="on", spec=SPEC)
    assert (await marketer.post("/console/rules/new", data=form)).status_code == 303
    again = await marketer.post("/console/rules/new", data=form | {"name": "Other"})
    assert again.status_code == 422 and "Id: a rule with this id exists already" in again.text
    assert [r.name for r in store.read(rule_store.all_rules)] == ["Twice"]


async def test_editing_disabling_and_enabling_are_in_the_history_with_before_and_after(console_as, store) -> None:
    marketer = await console_as("marketer")
    form = _form(marketer, id="greet", name="Greet", enabled="on", spec=SPEC)
    await marketer.post("/console/rules/new", data=form)
    edit = await marketer.get("/console/rules/greet/edit")
    assert "Product Added" in edit.text and 'value="Greet"' in edit.text
    saved = await marketer.post("/console/rules/greet/edit", data=form | {"name": "Greet warmly",
                                                                         "spec": SPEC + "cooldown: 3d\n"})  # fmt: skip
    assert saved.status_code == 303, saved.text
    refused = await marketer.post("/console/rules/greet/edit", data=form | {"spec": "trigger: {kind: nope}"})
    assert refused.status_code == 422 and "trigger" in refused.text
    assert store.read(rule_store.rule, "greet").name == "Greet warmly", "the refused edit changed nothing"
    disabled = await marketer.post("/console/rules/greet/disable", data=_form(marketer))
    assert disabled.status_code == 303
    assert store.read(rule_store.rule, "greet").enabled is False
    assert (await marketer.post("/console/rules/greet/enable", data=_form(marketer))).status_code == 303

    history = (await marketer.get("/v1/rules/greet/history")).json()
    assert [h["action"] for h in history] == ["enable", "disable", "upsert", "upsert"]
    renamed = {c["field"]: (c["before"], c["after"]) for c in history[2]["changes"]}
    assert renamed["name"] == ("Greet", "Greet warmly") and renamed["cooldown"] == (None, "3d")
    assert {c["field"]: (c["before"], c["after"]) for c in history[1]["changes"]} == {"enabled": ("true", "false")}
    assert history[3]["before"] is None and history[3]["after"]["name"] == "Greet"
    assert all(h["actor"] == marketer.email for h in history)

    page = await marketer.get("/console/rules/greet")
    assert page.status_code == 200
    assert re.search(r"<code>name</code></th>\s*<td class=\"before\"><code>Greet</code></td>\s*"
                     r"<td class=\"after\"><code>Greet warmly</code></td>", page.text)  # fmt: skip


async def test_a_dry_run_shows_what_would_be_sent_and_why(console_as, store) -> None:
    marketer = await console_as("marketer")
    await marketer.post("/console/rules/new", data=_form(marketer, id="greet", name="Greet", enabled="on", spec=SPEC))
    viewer = await console_as("viewer")
    fields = _form(viewer, customer_id="u1", event="Product Added", properties='{"price": 30}')
    ran = await viewer.post("/console/rules/greet/dry-run", headers={"HX-Request": "true"}, data=fields)
    assert ran.status_code == 200, ran.text
    assert ran.text.lstrip().startswith('<div id="dry-run-result"'), "a fragment for htmx"
    assert "would fire" in ran.text and "Product Added against Product Added — matched" in ran.text
    assert '<strong class="dry-subject">Hi Ada</strong>' in ran.text
    assert "Hello Ada!" in ran.text
    assert "&lt;b&gt;Ada&lt;/b&gt;" in ran.text, "the HTML is shown as its source, escaped"
    assert "Contact policy:" in ran.text and "Checked:" in ran.text
    assert store.read(lambda s: s.query(Action).count()) == 0, "a dry run writes nothing"

    whole = await viewer.post("/console/rules/greet/dry-run", data=_form(viewer, customer_id="", event=""))
    assert whole.status_code == 422 and "<html" in whole.text
    assert re.search(r'id="e-customer_id" class="error" role="alert">Customer id:', whole.text)
    bad_json = await viewer.post("/console/rules/greet/dry-run", data=fields | {"properties": "{nope"})
    assert bad_json.status_code == 422 and "Its properties (JSON, optional): not JSON" in bad_json.text


async def test_a_viewer_sees_rules_but_may_not_change_them(console_as, store) -> None:
    marketer = await console_as("marketer")
    await marketer.post("/console/rules/new", data=_form(marketer, id="greet", name="Greet", enabled="on", spec=SPEC))
    viewer = await console_as("viewer")
    page = await viewer.get("/console/rules/greet")
    assert page.status_code == 200 and "/console/rules/greet/edit" not in page.text and "Disable" not in page.text
    assert (await viewer.get("/console/rules/new")).status_code == 403
    assert (await viewer.get("/console/rules/greet/edit")).status_code == 403
    assert (await viewer.post("/console/rules/greet/disable", data=_form(viewer))).status_code == 403
    assert store.read(rule_store.rule, "greet").enabled is True
    assert (await viewer.get("/console/rules/nope")).status_code == 404
