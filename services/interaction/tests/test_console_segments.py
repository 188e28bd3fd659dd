"""The console's segment pages on SQLite without ClickHouse or Kafka: the list, the editor's
live check naming the field, saving refused inline with nothing half-saved, role refusals."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from ecrm_interaction.api.app import create_app
from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import users
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.segments import parse_definition

HTMX = {"HX-Request": "true"}
LOYAL = {"id": "loyal", "name": "Loyal customers",
         "condition": {"kind": "trait", "trait": "orders", "op": "gte", "value": 3}}  # fmt: skip


@pytest.fixture
async def signed_in(tmp_path):
    """``await signed_in("marketer")``: a client signed in to a console whose segment
    definitions the test holds (``client.definitions``); one segment, ``loyal``, defined."""
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/console.sqlite")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    definitions = SegmentDefinitions()
    definitions.put(parse_definition(LOYAL))
    app = create_app(settings, store, worker=None, segment_definitions=definitions)
    clients: list[httpx.AsyncClient] = []

    async def sign_in(role: str) -> httpx.AsyncClient:
        email = f"{role}-{uuid.uuid4().hex[:6]}@example.com"
        store.write(users.add_user, email, role.title(), role, "a long enough password", "test")
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test")
        signed = await client.post("/console/sign-in", data={"email": email, "password": "a long enough password"})
        assert signed.status_code == 303, signed.text
        client.csrf = (await client.get("/v1/me")).json()["csrf_token"]  # type: ignore[attr-defined]
        client.definitions = definitions  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield sign_in
    for client in clients:
        await client.aclose()
    engine.dispose()


def _form(client, *, condition, segment_id: str = "buyers", name: str = "Buyers") -> dict[str, str]:
    text = condition if isinstance(condition, str) else json.dumps(condition)
    return {"csrf_token": client.csrf, "id": segment_id, "name": name, "description": "", "condition": text}


async def _ids(client) -> list[str]:
    return [s["id"] for s in (await client.get("/v1/segments")).json()]


async def test_the_list_shows_each_segment_and_says_counts_need_clickhouse(signed_in) -> None:
    marketer = await signed_in("marketer")
    page = await marketer.get("/console/segments")
    assert page.status_code == 200
    assert "Loyal customers" in page.text and 'href="/console/segments/loyal"' in page.text
    assert "orders" in page.text  # the condition in words
    assert "Member counts are unavailable" in page.text
    assert 'href="/console/segments/new"' in page.text
    viewer = await signed_in("viewer")
    assert 'href="/console/segments/new"' not in (await viewer.get("/console/segments")).text


async def test_the_editor_checks_the_definition_as_one_types_naming_the_field(signed_in) -> None:
    marketer = await signed_in("marketer")
    editor = await marketer.get("/console/segments/new")
    assert editor.status_code == 200
    assert 'hx-post="/console/segments/preview"' in editor.text and "input changed delay:400ms" in editor.text
    assert '<label for="f-condition">Condition</label>' in editor.text

    typo = _form(marketer, condition={"kind": "trait", "trait": "ordres", "op": "gte", "value": 3})
    checked = await marketer.post("/console/segments/preview", data=typo, headers=HTMX)
    assert checked.status_code == 200  # htmx swaps only 2xx answers in
    assert checked.text.lstrip().startswith('<div id="preview"'), "a fragment, not a page"
    assert "<code>condition.trait.trait</code>" in checked.text and "no profile field &#39;ordres&#39;" in checked.text

    not_json = await marketer.post("/console/segments/preview", data=_form(marketer, condition="{oops"), headers=HTMX)
    assert "<strong>Condition</strong>" in not_json.text and "not valid JSON" in not_json.text

    bad_id = _form(marketer, segment_id="Bad Id", condition=LOYAL["condition"])
    assert (
        "<strong>Id</strong> (<code>id</code>)"
        in (await marketer.post("/console/segments/preview", data=bad_id, headers=HTMX)).text
    )

    fine = await marketer.post("/console/segments/preview", data=_form(marketer, condition=LOYAL["condition"]),
                               headers=HTMX)  # fmt: skip
    assert "Valid:" in fine.text and "orders" in fine.text
    assert "ClickHouse is not configured" in fine.text
    assert await _ids(marketer) == ["loyal"], "a preview saves nothing"


async def test_the_preview_without_javascript_shows_the_whole_editor_with_inline_errors(signed_in) -> None:
    marketer = await signed_in("marketer")
    typo = _form(marketer, condition={"kind": "event", "event": "Order Completed", "within_days": 0})
    page = await marketer.post("/console/segments/preview", data=typo)
    assert page.status_code == 422
    assert "<!doctype html>" in page.text
    assert 'id="e-condition"' in page.text and "condition.event.within_days" in page.text
    assert "Order Completed" in page.text, "what was typed is kept"


async def test_saving_a_bad_definition_answers_inline_and_saves_nothing(signed_in) -> None:
    marketer = await signed_in("marketer")
    bad = _form(marketer, segment_id="buyers", name="", condition={"kind": "trait", "trait": "orders", "op": "gte",
                                                                   "value": "many"})  # fmt: skip
    page = await marketer.post("/console/segments", data=bad)
    assert page.status_code == 422
    assert 'id="e-name"' in page.text and 'aria-invalid="true"' in page.text
    assert 'id="e-condition"' in page.text and "condition.trait" in page.text and "many" in page.text
    assert 'value="buyers"' in page.text
    assert await _ids(marketer) == ["loyal"]


async def test_saving_without_kafka_says_so_and_saves_nothing(signed_in) -> None:
    marketer = await signed_in("marketer")
    page = await marketer.post("/console/segments", data=_form(marketer, condition=LOYAL["condition"]))
    assert page.status_code == 503
    assert "kafka_unavailable" in page.text
    assert await _ids(marketer) == ["loyal"]


async def test_a_new_segment_may_not_take_an_existing_id(signed_in) -> None:
    marketer = await signed_in("marketer")
    page = await marketer.post("/console/segments", data=_form(marketer, segment_id="loyal", condition={
        "kind": "trait", "trait": "orders", "op": "gte", "value": 1}))  # fmt: skip
    assert page.status_code == 422
    assert 'id="e-id"' in page.text and "exists already" in page.text
    assert marketer.definitions.get("loyal").condition.value == 3, "the existing segment is untouched"


async def test_the_segment_page_and_its_members_page_render_without_clickhouse(signed_in) -> None:
    marketer = await signed_in("marketer")
    page = await marketer.get("/console/segments/loyal")
    assert page.status_code == 200
    assert "Loyal customers" in page.text and "Members and changes are unavailable" in page.text
    assert 'href="/v1/segments/loyal/members.csv"' in page.text
    assert 'action="/console/segments/loyal/delete"' in page.text and "data-confirm=" in page.text
    members = await marketer.get("/console/segments/loyal/members")
    assert members.status_code == 200 and "Members are unavailable" in members.text
    edit = await marketer.get("/console/segments/loyal/edit")
    assert edit.status_code == 200 and "&#34;orders&#34;" in edit.text
    assert (await marketer.get("/console/segments/nope")).status_code == 404
    viewer = await signed_in("viewer")
    seen = await viewer.get("/console/segments/loyal")
    assert seen.status_code == 200 and "/delete" not in seen.text and "/edit" not in seen.text


async def test_a_viewer_may_not_edit_save_preview_or_delete(signed_in) -> None:
    viewer = await signed_in("viewer")
    assert (await viewer.get("/console/segments/new")).status_code == 403
    assert (await viewer.get("/console/segments/loyal/edit")).status_code == 403
    form = _form(viewer, segment_id="loyal", condition={"kind": "trait", "trait": "orders", "op": "gte", "value": 1})
    for path in ("/console/segments", "/console/segments/loyal", "/console/segments/preview",
                 "/console/segments/loyal/delete"):  # fmt: skip
        assert (await viewer.post(path, data=form)).status_code == 403, path
    assert viewer.definitions.get("loyal").condition.value == 3
    refused = await viewer.put("/v1/segments/loyal", json=LOYAL, headers={"X-CSRF-Token": viewer.csrf})
    assert refused.status_code == 403


async def test_deleting_without_kafka_keeps_the_segment(signed_in) -> None:
    marketer = await signed_in("marketer")
    answer = await marketer.post("/console/segments/loyal/delete", data={"csrf_token": marketer.csrf})
    assert answer.status_code == 503 and "Not deleted" in answer.text
    assert await _ids(marketer) == ["loyal"]
    forged = await marketer.post("/console/segments/loyal/delete", data={"csrf_token": "forged"})
    assert forged.status_code == 403


async def test_editing_keeps_the_id_and_a_refused_change_leaves_the_segment_as_it_was(signed_in) -> None:
    marketer = await signed_in("marketer")
    edit = await marketer.get("/console/segments/loyal/edit")
    assert 'action="/console/segments/loyal"' in edit.text and 'id="f-id"' not in edit.text, "the id cannot change"
    assert "load" in edit.text, "an existing segment is previewed as the editor opens"
    form = _form(marketer, segment_id="other", name="Loyal", condition={"kind": "trait", "trait": "orders",
                                                                      "op": "between", "value": 1})  # fmt: skip
    page = await marketer.post("/console/segments/loyal", data=form)
    assert page.status_code == 422
    assert 'id="e-condition"' in page.text and "condition.trait.op" in page.text
    assert await _ids(marketer) == ["loyal"]
    assert marketer.definitions.get("loyal").condition.op == "gte"
