"""The console's templates pages (in-process, SQLite): inline errors naming the part (a Jinja
syntax error, an unknown name), nothing half-saved, the live preview for a customer (subject and
text as a fragment, the HTML served under its own CSP for the sandboxed frame), versions and
restoring one, the test send through the real SMTP sender, and who may do what."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy as email_policy

import pytest
from interaction_factories import change, trigger

from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.engine.rules import LoyaltyProgram
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import Action, TemplateVersion

HTML = "<html><head><style>p { color: red }</style></head><body><p style='margin:0'>Hello {{ traits.firstName }}</p></body></html>"  # noqa: E501


@pytest.fixture
def console_app(tmp_path, smtp_sink):
    """The console's app (as in conftest), its mail going to a real SMTP sink."""
    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage.store import Store, make_engine, migrate

    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/console.sqlite", smtp_url=smtp_sink.url)
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    with store.sessions.begin() as session:
        IntakeStep(store, "s").profile_change(session, change(trigger(message_id="m0"), firstName="Ada"), [],
                                              LoyaltyProgram(), datetime.now(UTC), Intake())  # fmt: skip
    yield create_app(settings, store, worker=None), store
    engine.dispose()


@pytest.fixture
def store(console_app):
    return console_app[1]


def _form(client, **fields) -> dict[str, str]:
    return {"csrf_token": client.csrf, **fields}


def _alerts(text: str) -> list[str]:
    return re.findall(r'class="error" role="alert">(.*?)</p>', text, re.S)


async def test_a_marketer_writes_a_template_and_each_save_is_a_version(console_as, store) -> None:
    marketer = await console_as("marketer")
    page = await marketer.get("/console/templates/new")
    assert page.status_code == 200
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    assert re.search(r'<iframe name="html-preview" [^>]*sandbox', page.text)
    form = _form(marketer, id="hello", subject="Hi {{ traits.firstName }}", text="Hello!", html=HTML)
    created = await marketer.post("/console/templates/new", data=form)
    assert (created.status_code, created.headers["location"]) == (303, "/console/templates/hello?saved=1")
    changed = await marketer.post("/console/templates/hello", data=form | {"subject": "Welcome {{ traits.firstName }}"})
    assert changed.status_code == 303
    unchanged = await marketer.post(
        "/console/templates/hello", data=form | {"subject": "Welcome {{ traits.firstName }}"}
    )
    assert unchanged.status_code == 303
    versions = (await marketer.get("/v1/templates/hello/versions")).json()
    assert [(v["version"], v["subject"], v["saved_by"]) for v in versions] == [
        (2, "Welcome {{ traits.firstName }}", marketer.email), (1, "Hi {{ traits.firstName }}", marketer.email)
    ], "a save that changes nothing keeps no version"  # fmt: skip
    shown = await marketer.get("/console/templates/hello")
    assert 'role="status"' not in shown.text and "/console/templates/hello/versions/1" in shown.text

    old = await marketer.get("/console/templates/hello/versions/1")
    assert old.status_code == 200 and "Hi {{ traits.firstName }}" in old.text
    restored = await marketer.post("/console/templates/hello/versions/1/restore", data=_form(marketer))
    assert (restored.status_code, restored.headers["location"]) == (303, "/console/templates/hello?restored=1")
    assert store.read(rule_store.template, "hello").subject == "Hi {{ traits.firstName }}"
    assert [v["version"] for v in (await marketer.get("/v1/templates/hello/versions")).json()] == [3, 2, 1]
    [entry, *_] = [e for e in store.read(audit_log.recent) if e.entity == "template"]
    assert '"version":3' in entry.detail and '"before":{"subject":"Welcome' in entry.detail


@pytest.mark.parametrize(
    ("part", "source", "named", "says"),
    [
        ("subject", "Hi {{ traits.firstName }", "Subject", "template syntax error on line 1"),
        ("text", "Hello\n{% if x %}", "Text", "line 2"),
        ("html", "<p>{{ name | shout }}</p>", "HTML", "shout"),
        ("subject", "Hi {{ trait.firstName }}", "Subject", "unknown name trait"),
        ("html", "<p>{{ customer.email }}</p>", "HTML", "unknown name customer"),
        ("subject", "", "Subject", "at least 1"),
    ],
)
async def test_a_bad_part_is_refused_inline_naming_it_and_nothing_is_saved(
    console_as, store, part, source, named, says
) -> None:
    marketer = await console_as("marketer")
    form = {"id": "news", "subject": "News", "text": "Hello", "html": ""} | {part: source}
    refused = await marketer.post("/console/templates/new", data=_form(marketer, **form))
    assert refused.status_code == 422, refused.text
    assert any(a.startswith(f"{named}:") and says in a for a in _alerts(refused.text)), _alerts(refused.text)
    assert store.read(rule_store.template, "news") is None
    assert store.read(lambda s: s.query(TemplateVersion).count()) == 0, "no version of a refused save"

    assert (await marketer.post("/console/templates/new", data=_form(marketer, id="news", subject="News",
                                                                    text="Hello"))).status_code == 303  # fmt: skip
    again = await marketer.post("/console/templates/news", data=_form(marketer, **form))
    assert again.status_code == 422 and any(a.startswith(f"{named}:") for a in _alerts(again.text))
    assert (store.read(rule_store.template, "news").subject, store.read(rule_store.template, "news").text) == (
        "News", "Hello"), "the refused edit changed nothing"  # fmt: skip


async def test_a_taken_id_is_refused_on_the_id_field(console_as, store) -> None:
    marketer = await console_as("marketer")
    form = _form(marketer, id="hello", subject="Hi", text="Hello")
    assert (await marketer.post("/console/templates/new", data=form)).status_code == 303
    taken = await marketer.post("/console/templates/new", data=form | {"subject": "Other"})
    assert taken.status_code == 422 and any(
        a.startswith("Id: a template with this id exists") for a in _alerts(taken.text)
    )
    assert store.read(rule_store.template, "hello").subject == "Hi"


async def test_the_preview_renders_the_unsaved_template_for_a_customer(console_as, store) -> None:
    viewer = await console_as("viewer")
    draft = {"subject": "Hi {{ traits.firstName }}", "text": "Hello {{ traits.firstName | upper }}", "html": HTML,
             "preview_customer": "u1"}  # fmt: skip
    parts = await viewer.post("/console/templates/preview", data=_form(viewer, **draft), headers={"HX-Request": "true"})
    assert parts.status_code == 200, parts.text
    assert parts.text.lstrip().startswith('<div id="preview-parts"')
    assert '<strong id="preview-subject">Hi Ada</strong>' in parts.text and "Hello ADA" in parts.text

    framed = await viewer.post("/console/templates/preview.html", data=_form(viewer, **draft))
    assert framed.status_code == 200
    csp = framed.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in csp and "sandbox" in csp and "script-src" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert "<p style='margin:0'>Hello Ada</p>" in framed.text, "the email's HTML as the customer gets it"

    broken = await viewer.post("/console/templates/preview", headers={"HX-Request": "true"},
                               data=_form(viewer, **draft | {"text": "{{ 1 / 0 }}"}))  # fmt: skip
    assert broken.status_code == 200 and any(
        a.startswith("Text: the text does not render") for a in _alerts(broken.text)
    )
    nobody = await viewer.post("/console/templates/preview", headers={"HX-Request": "true"},
                               data=_form(viewer, **draft | {"preview_customer": ""}))  # fmt: skip
    assert "Choose a customer" in nobody.text
    whole = await viewer.post("/console/templates/preview", data=_form(viewer, **draft, template_id=""))
    assert whole.status_code == 200 and "<html" in whole.text and "Hi Ada" in whole.text, "works without JavaScript"

    api = await viewer.post("/v1/templates/preview", headers={"X-CSRF-Token": viewer.csrf},
                            json={"customer_id": "u1", "subject": "{{ x }}", "text": "t"})  # fmt: skip
    [error] = api.json()["error"]["errors"]
    assert (api.status_code, error["field"], error["rule"]) == (422, "subject", "template_unknown_name")


async def test_a_test_send_goes_through_smtp_marked_as_a_test_and_counts_for_no_rule(
    console_as, store, smtp_sink
) -> None:
    marketer = await console_as("marketer")
    hello = _form(
        marketer, id="hello", subject="Hi {{ traits.firstName }}", text="Hello {{ traits.firstName }}", html=HTML
    )
    await marketer.post("/console/templates/new", data=hello)
    sent = await marketer.post("/console/templates/hello/test-send",
                               data=_form(marketer, to="me@shop.example.com", test_customer="u1"))  # fmt: skip
    assert (sent.status_code, sent.headers["location"]) == (303, "/console/templates/hello?sent=me%40shop.example.com")
    [path] = smtp_sink.messages()
    message = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
    assert (message["To"], message["Subject"], message["X-ECRM-Test"]) == ("me@shop.example.com", "[Test] Hi Ada", "1")
    assert "Hello Ada" in message.get_body(("plain",)).get_content()
    assert "/t/" not in message.get_body(("html",)).get_content(), "no tracking in a test"
    assert store.read(lambda s: s.query(Action).count()) == 0, "no action: no rule's send, no contact policy"
    [entry] = [e for e in store.read(audit_log.recent) if e.action == "test_send"]
    assert entry.actor == marketer.email and "me@shop.example.com" in entry.detail

    bad = await marketer.post("/console/templates/hello/test-send", data=_form(marketer, to="nope", test_customer=""))
    assert bad.status_code == 422
    alerts = _alerts(bad.text)
    assert any(a.startswith("Send to:") for a in alerts) and any(a.startswith("Render for customer:") for a in alerts)
    assert len(smtp_sink.messages()) == 1


async def test_a_viewer_reads_templates_but_may_not_change_or_send_them(console_as, store) -> None:
    marketer = await console_as("marketer")
    await marketer.post("/console/templates/new", data=_form(marketer, id="hello", subject="Hi", text="Hello"))
    viewer = await console_as("viewer")
    page = await viewer.get("/console/templates/hello")
    assert page.status_code == 200 and "Save template" not in page.text and "Send a test" not in page.text
    assert (await viewer.get("/console/templates/new")).status_code == 403
    assert (await viewer.post("/console/templates/hello", data=_form(viewer, subject="X", text="Y"))).status_code == 403
    refused = await viewer.post(
        "/console/templates/hello/test-send", data=_form(viewer, to="a@b.co", test_customer="u1")
    )
    assert refused.status_code == 403
    assert (await viewer.post("/console/templates/hello/versions/1/restore", data=_form(viewer))).status_code == 403
    assert store.read(rule_store.template, "hello").subject == "Hi"
    assert (await viewer.get("/console/templates/nope")).status_code == 404
    assert (await viewer.get("/console/templates/hello/versions/9")).status_code == 404
