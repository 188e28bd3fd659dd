"""The console's Data pages, in-process on SQLite: each page renders, admins' pages refuse
others, every form's refusal is inline and names the field, a write key is shown once."""

from __future__ import annotations

import re

import pytest

from ecrm_interaction.api.routes.pipeline import figures_of
from ecrm_interaction.api.services.dead_letters import preview
from ecrm_interaction.storage import audit
from ecrm_schemas.dead_letter import DeadLetter
from ecrm_schemas.sources import SourceRegistry, hash_key
from ecrm_schemas.validation import FieldError

ADMIN_PAGES = ("/console/data/sources", "/console/data/audit", "/console/data/users")
ALL_PAGES = ("/console/data", "/console/data/dead-letters", "/console/data/catalog", *ADMIN_PAGES)


@pytest.fixture
def sources_file(console_app, tmp_path):
    """The app's settings pointed at a sources registry file (as the stack's COLLECTOR_SOURCES_FILE)."""
    app, _ = console_app
    path = tmp_path / "sources.json"
    app.state.settings = app.state.settings.model_copy(update={"collector_sources_file": path})
    return path


def _inline_error(html: str, field: str) -> str:
    found = re.search(rf'<p id="e-{field}" class="error" role="alert">([^<]*)</p>', html)
    assert found, f"no inline error for {field} in the page"
    return found.group(1)


async def test_every_data_page_renders_for_an_admin(console_as, sources_file) -> None:
    admin = await console_as("admin")
    for path in ALL_PAGES:
        page = await admin.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert 'aria-label="Data pages"' in page.text
        assert "<script>" not in page.text and " style=" not in page.text, path
    health = (await admin.get("/console/data")).text
    assert "ClickHouse is not configured" in health and "outbox events waiting" in health
    assert "interaction" in health and "profile changes consumed" in health
    letters = (await admin.get("/console/data/dead-letters")).text
    assert "Kafka cannot be read from this service" in letters


async def test_viewers_and_marketers_see_health_letters_and_catalog_but_not_keys_audit_or_users(console_as) -> None:
    for role in ("viewer", "marketer"):
        person = await console_as(role)
        for path in ("/console/data", "/console/data/dead-letters", "/console/data/catalog"):
            page = await person.get(path)
            assert page.status_code == 200, (role, path)
            for admin_path in ADMIN_PAGES:
                assert f'href="{admin_path}"' not in page.text, (role, admin_path)
        for path in ADMIN_PAGES:
            refused = await person.get(path)
            assert refused.status_code == 403, (role, path)
            assert "needs the admin role" in refused.text
        assert (await person.get("/v1/sources")).status_code == 403
        assert (await person.get("/v1/audit")).status_code == 403


async def test_non_admins_cannot_create_or_revoke_a_source_nor_replay(console_as, sources_file) -> None:
    marketer = await console_as("marketer")
    made = await marketer.post(
        "/console/data/sources", data={"csrf_token": marketer.csrf, "name": "x", "kind": "server"}
    )
    assert made.status_code == 403
    assert not sources_file.exists()
    revoke = await marketer.post("/console/data/sources/x/revoke", data={"csrf_token": marketer.csrf})
    replay = await marketer.post("/console/data/dead-letters/replay", data={"csrf_token": marketer.csrf})
    assert (revoke.status_code, replay.status_code) == (403, 403)


async def test_the_catalog_lists_every_catalogued_event_with_its_properties(console_as) -> None:
    viewer = await console_as("viewer")
    page = (await viewer.get("/console/data/catalog")).text
    assert "Order Completed" in page and "Email Link Clicked" in page
    assert "<code>order_id</code> string <strong>required</strong>" in page
    assert "ClickHouse is not configured for this service: no counts." in page
    body = (await viewer.get("/v1/catalog")).json()
    order = next(e for e in body["events"] if e["name"] == "Order Completed")
    assert order["server_only"] and order["last_7_days"] is None
    assert {"name": "total", "type": "number or string", "required": True, "description": ""} in order["properties"]


async def test_a_new_source_shows_its_key_once_stores_only_its_hash_and_is_audited(
    console_as, sources_file, console_app
) -> None:
    admin = await console_as("admin")
    made = await admin.post(
        "/console/data/sources",
        data={
            "csrf_token": admin.csrf,
            "name": "shop-web",
            "kind": "browser",
            "allowed_origins": "https://shop.example",
        },
    )
    assert made.status_code == 200, made.text
    key = re.search(r'<code id="write-key" class="secret-value">([^<]+)</code>', made.text).group(1)
    assert key.startswith("wkb_") and "shown this once" in made.text
    stored = sources_file.read_text()
    assert key not in stored and hash_key(key) in stored
    found = SourceRegistry.load(sources_file).find(key)
    assert found is not None and found.allowed_origins == ("https://shop.example",)

    again = await admin.get("/console/data/sources")
    assert key not in again.text and "shop-web" in again.text and "in force" in again.text
    assert key not in (await admin.get("/v1/sources")).text
    log = (await admin.get("/v1/audit", params={"entity": "source:shop-web"})).json()
    assert [e["action"] for e in log] == ["source.create"]
    assert key not in str(log)

    revoked = await admin.post("/console/data/sources/shop-web/revoke", data={"csrf_token": admin.csrf})
    assert (revoked.status_code, revoked.headers["location"]) == (303, "/console/data/sources")
    assert SourceRegistry.load(sources_file).find(key) is None
    assert "revoked" in (await admin.get("/console/data/sources")).text
    log = (await admin.get("/v1/audit", params={"entity": "source"})).json()
    assert [e["action"] for e in log] == ["source.revoke", "source.create"]


async def test_a_refused_source_is_shown_inline_naming_the_field_and_nothing_is_saved(console_as, sources_file) -> None:
    admin = await console_as("admin")
    blank = await admin.post("/console/data/sources", data={"csrf_token": admin.csrf, "name": "", "kind": "server"})
    assert blank.status_code == 422
    assert _inline_error(blank.text, "name").startswith("Name: ")
    assert not sources_file.exists() or SourceRegistry.load(sources_file).sources == {}

    bad_origin = await admin.post(
        "/console/data/sources",
        data={"csrf_token": admin.csrf, "name": "web", "kind": "browser", "allowed_origins": "shop.example/path"},
    )
    assert bad_origin.status_code == 422
    assert "origin" in _inline_error(bad_origin.text, "allowed_origins")
    assert 'value="web"' in bad_origin.text  # what was typed is kept

    ok = await admin.post("/console/data/sources", data={"csrf_token": admin.csrf, "name": "erp", "kind": "server"})
    assert ok.status_code == 200
    twice = await admin.post("/console/data/sources", data={"csrf_token": admin.csrf, "name": "erp", "kind": "server"})
    assert twice.status_code == 409
    assert "exists already" in _inline_error(twice.text, "name")
    assert len(SourceRegistry.load(sources_file).sources) == 1


async def test_sources_without_a_registry_file_say_so(console_as) -> None:
    admin = await console_as("admin")
    page = await admin.get("/console/data/sources")
    assert page.status_code == 200 and "sources_file_not_configured" in page.text


async def test_users_add_with_the_password_rule_inline_change_role_and_disable(console_as, console_app) -> None:
    admin = await console_as("admin")
    page = await admin.get("/console/data/users")
    assert "At least 12 characters." in page.text and admin.email in page.text

    form = {"csrf_token": admin.csrf, "email": "new@example.com", "name": "New", "role": "agent"}
    short = await admin.post("/console/data/users", data=form | {"password": "short"})
    assert short.status_code == 422
    assert "Password: " in _inline_error(short.text, "password") and "12" in _inline_error(short.text, "password")
    assert "short" not in re.findall(r'name="password"[^>]*', short.text)[0]
    assert 'value="new@example.com"' in short.text
    assert "new@example.com" not in str((await admin.get("/v1/users")).json())

    good = {"password": "a long enough password"}
    bad_email = await admin.post("/console/data/users", data=form | good | {"email": "not-an-email"})
    assert bad_email.status_code == 422 and _inline_error(bad_email.text, "email").startswith("Email: ")

    made = await admin.post("/console/data/users", data=form | good)
    assert (made.status_code, made.headers["location"]) == (303, "/console/data/users")
    twice = await admin.post("/console/data/users", data=form | good)
    assert twice.status_code == 409 and "exists already" in _inline_error(twice.text, "email")

    promoted = await admin.post(
        "/console/data/users/new@example.com", data={"csrf_token": admin.csrf, "role": "marketer"}
    )
    assert promoted.status_code == 303
    disabled = await admin.post(
        "/console/data/users/new@example.com", data={"csrf_token": admin.csrf, "disabled": "true"}
    )
    assert disabled.status_code == 303
    user = next(u for u in (await admin.get("/v1/users")).json() if u["email"] == "new@example.com")
    assert user["role"] == "marketer" and user["disabled_at"] is not None
    assert "Enable new@example.com" in (await admin.get("/console/data/users")).text

    myself = await admin.post(f"/console/data/users/{admin.email}", data={"csrf_token": admin.csrf, "role": "viewer"})
    assert myself.status_code == 409
    assert "cannot take the admin role from yourself" in _inline_error(myself.text, "role")


async def test_the_audit_log_filters_by_actor_and_entity_pages_and_shows_each_detail(console_as, console_app) -> None:
    _app, store = console_app
    admin = await console_as("admin")

    def entries(session) -> None:
        for n in range(60):
            audit.record(
                session, "ops@example.com", "update", "rule", f"r{n:02d}", {"enabled": {"before": True, "after": False}}
            )
        audit.record(session, "other@example.com", "create", "template", "welcome", {"subject": "Hello there"})

    store.write(entries)
    first = await admin.get("/console/data/audit", params={"actor": "ops@example.com"})
    assert first.status_code == 200
    assert first.text.count("<td>ops@example.com</td>") == 50 and "other@example.com</td>" not in first.text
    assert 'rel="next"' in first.text and '"after": false' in first.text
    second = await admin.get("/console/data/audit", params={"actor": "ops@example.com", "page": 2})
    assert second.text.count("<td>ops@example.com</td>") == 10 and 'rel="next"' not in second.text
    one = await admin.get("/console/data/audit", params={"entity": "template:welcome"})
    assert "Hello there" in one.text and "<td>ops@example.com</td>" not in one.text


async def test_replaying_nothing_is_refused_inline(console_as) -> None:
    admin = await console_as("admin")
    nothing = await admin.post("/console/data/dead-letters/replay", data={"csrf_token": admin.csrf})
    assert nothing.status_code == 422
    assert "Choose at least one dead letter to replay" in nothing.text


def test_a_dead_letter_preview_shows_the_shape_never_the_values() -> None:
    payload = (
        b'{"type": "track", "event": "Order Completed", "userId": "u-42", "traits": {"email": "ann@example.com"},'
        b' "properties": {"total": 12.5, "items": [1, 2]}, "ok": true}'
    )
    errors = [FieldError("properties.order_id", "missing", "required")]
    letter = DeadLetter.build(
        topic="ecrm.events", source="collector:shop", reason="invalid_event", errors=errors, payload=payload
    )
    shown = preview(letter)
    assert "ann@example.com" not in shown and "u-42" not in shown and "12.5" not in shown
    assert '"event":"Order Completed"' in shown and '"email":"<text>"' in shown and '"total":"<number>"' in shown
    assert '"ok":true' in shown
    assert "not JSON" in preview(
        DeadLetter.build(topic="t", source="s", reason="undecodable", errors=[], payload=b"\xff\xfe")
    )


def test_pipeline_figures_are_summed_over_labels_from_the_exposition_text() -> None:
    text = (
        "# TYPE ecrm_aggregator_consumer_lag gauge\n"
        'ecrm_aggregator_consumer_lag{partition="0"} 3.0\n'
        'ecrm_aggregator_consumer_lag{partition="1"} 4.0\n'
        "# TYPE ecrm_aggregator_dead_letters_total counter\n"
        'ecrm_aggregator_dead_letters_total{reason="invalid_event"} 2.0\n'
        'ecrm_aggregator_dead_letters_created{reason="invalid_event"} 1.7e9\n'
    )
    figures = {f.name: f.value for f in figures_of("aggregator", text)}
    assert figures["ecrm_aggregator_consumer_lag"] == 7.0
    assert figures["ecrm_aggregator_dead_letters"] == 2.0
    assert figures["ecrm_aggregator_events_written"] is None
