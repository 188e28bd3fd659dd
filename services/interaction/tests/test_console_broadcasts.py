"""The console's broadcast pages (in-process, SQLite): the list, the form with inline errors
naming the field, the detail page's real audience and its controls, and role refusals."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ecrm_interaction.engine.rules import TemplateSpec
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import Consent, Customer, CustomerSegment


def _world(store) -> None:
    store.write(
        rule_store.upsert_rules,
        [TemplateSpec(id="news", subject="News", text="Hi"), TemplateSpec(id="other", subject="Other", text="Hi")],
        [],
    )
    now = datetime.now(UTC)
    with store.sessions.begin() as session:
        for i, kind in enumerate(["ok", "ok", "ok", "unsubscribed", "no_consent"]):
            customer_id = f"c{i}"
            session.add(Customer(customer_id=customer_id, email=f"{customer_id}@example.com",
                                 unsubscribed_at=now if kind == "unsubscribed" else None))  # fmt: skip
            session.add(Consent(customer_id=customer_id, channel="email", purpose="marketing",
                                granted=kind != "no_consent", source="test", updated_at=now))  # fmt: skip
            session.add(CustomerSegment(customer_id=customer_id, segment_id="vip", segment_name="VIP", since=now))


FORM = {"name": "Winter sale", "segment_id": "vip", "template_a": "news", "holdout_percent": "0",
        "winner_metric": "clicks", "rate_per_minute": "100"}  # fmt: skip


async def _create(client, **fields) -> str:
    answer = await client.post("/console/broadcasts/new", data={**FORM, **fields, "csrf_token": client.csrf})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


async def test_a_marketer_creates_previews_schedules_pauses_resumes_and_cancels(console_app, console_as) -> None:
    _app, store = console_app
    _world(store)
    marketer = await console_as("marketer")
    empty = await marketer.get("/console/broadcasts")
    assert empty.status_code == 200 and "No broadcasts yet" in empty.text and "New broadcast" in empty.text
    form = await marketer.get("/console/broadcasts/new")
    assert form.status_code == 200
    for label in ("Name", "Segment", "Template A", "Template B (A/B test)", "Holdout %", "Send rate", "Start (UTC)"):
        assert f">{label}" in form.text, label
    location = await _create(marketer)
    detail = await marketer.get(location)
    assert detail.status_code == 200
    assert re.search(r'id="members">5<', detail.text) and re.search(r'id="to-send">3<', detail.text)
    assert "no_consent" in detail.text and "unsubscribed" in detail.text and ">Schedule<" in detail.text
    assert "Counted " in detail.text and ">Count again<" in detail.text, "a draft shows when its audience was counted"
    with store.sessions.begin() as session:  # c0 withdraws consent: the kept count does not know yet
        session.merge(Consent(customer_id="c0", channel="email", purpose="marketing", granted=False, source="test",
                              updated_at=datetime.now(UTC)))  # fmt: skip
    assert re.search(r'id="to-send">3<', (await marketer.get(location)).text)
    counted = await marketer.post(f"{location}/audience", data={"csrf_token": marketer.csrf})
    assert counted.status_code == 303 and counted.headers["location"].endswith("?done=audience")
    recounted = (await marketer.get(counted.headers["location"])).text
    assert "the audience is counted again" in recounted and re.search(r'id="to-send">2<', recounted)
    edit = await marketer.get(f"{location}/edit")
    assert edit.status_code == 200 and 'value="Winter sale"' in edit.text
    renamed = await marketer.post(
        f"{location}/edit", data={**FORM, "name": "Winter sale 2", "csrf_token": marketer.csrf}
    )
    assert renamed.status_code == 303
    scheduled = await marketer.post(f"{location}/schedule", data={"csrf_token": marketer.csrf})
    assert scheduled.status_code == 303
    page = (await marketer.get(scheduled.headers["location"])).text
    assert "Winter sale 2" in page and ">Pause<" in page and "data-confirm=" in page and "Results" in page
    assert re.search(r'id="status">sending<', page) and 'hx-trigger="every 3s"' in page, "it refreshes while sending"
    paused = await marketer.post(f"{location}/pause", data={"csrf_token": marketer.csrf})
    assert paused.status_code == 303
    page = (await marketer.get(location)).text
    assert 'id="status">paused<' in page and ">Resume<" in page
    assert (await marketer.post(f"{location}/resume", data={"csrf_token": marketer.csrf})).status_code == 303
    assert (await marketer.post(f"{location}/cancel", data={"csrf_token": marketer.csrf})).status_code == 303
    page = (await marketer.get(location)).text
    assert 'id="status">cancelled<' in page and ">Cancel broadcast<" not in page and "every 3s" not in page
    again = await marketer.post(f"{location}/resume", data={"csrf_token": marketer.csrf})
    assert again.status_code == 409 and "cancelled" in again.text
    listed = (await marketer.get("/console/broadcasts")).text
    assert "Winter sale 2" in listed and "cancelled" in listed


async def test_bad_input_is_shown_beside_its_field_and_nothing_is_saved(console_app, console_as) -> None:
    _app, store = console_app
    _world(store)
    marketer = await console_as("marketer")
    cases = [
        ({"name": ""}, "Name:"),
        ({"segment_id": "nobody"}, "Segment:"),
        ({"template_a": ""}, "Template A:"),
        ({"rate_per_minute": "0"}, "Send rate (messages per minute):"),
        ({"rate_per_minute": "fast"}, "Send rate (messages per minute):"),
        ({"holdout_percent": "90"}, "Holdout %:"),
        ({"scheduled_at": "tomorrow"}, "Start (UTC):"),
        ({"template_b": "other", "share_a": "50", "share_b": "40"}, "Share A %:"),
        ({"template_b": "other", "share_a": "50", "share_b": "0"}, "Share B %:"),
    ]
    for change, message in cases:
        answer = await marketer.post("/console/broadcasts/new", data={**FORM, **change, "csrf_token": marketer.csrf})
        assert answer.status_code == 422, (change, answer.status_code)
        assert f'role="alert">{message}' in answer.text.replace("\n", ""), (change, answer.text[-3000:])
        typed = next(iter(change.values()))
        if typed:
            assert f'value="{typed}"' in answer.text or f'<option value="{typed}" selected' in answer.text, change
    assert "No broadcasts yet" in (await marketer.get("/console/broadcasts")).text


async def test_an_ab_broadcast_with_a_holdout_shows_its_variants(console_app, console_as) -> None:
    _app, store = console_app
    _world(store)
    marketer = await console_as("marketer")
    fields = {"template_b": "other", "holdout_percent": "20", "winner_metric": "conversions"}
    location = await _create(marketer, **fields)
    broadcast = (await marketer.get(f"/v1/broadcasts/{location.rsplit('/', 1)[1]}")).json()
    assert [(v["name"], v["template"], v["share"]) for v in broadcast["variants"]] == [
        ("A", "news", 50), ("B", "other", 50)
    ]  # fmt: skip
    assert broadcast["holdout_percent"] == 20 and broadcast["winner_metric"] == "conversions"
    await marketer.post(f"{location}/schedule", data={"csrf_token": marketer.csrf})
    page = (await marketer.get(location)).text
    assert "Per variant" in page and ">A<" in page and ">B<" in page and "need ClickHouse" in page


async def test_a_viewer_sees_but_cannot_change(console_app, console_as) -> None:
    _app, store = console_app
    _world(store)
    marketer, viewer = await console_as("marketer"), await console_as("viewer")
    location = await _create(marketer)
    page = await viewer.get(location)
    assert page.status_code == 200 and ">Schedule<" not in page.text and ">Edit<" not in page.text
    assert ">Count again<" not in page.text
    assert "New broadcast" not in (await viewer.get("/console/broadcasts")).text
    assert (await viewer.get("/console/broadcasts/new")).status_code == 403
    for path in (
        "/console/broadcasts/new",
        f"{location}/edit",
        f"{location}/schedule",
        f"{location}/cancel",
        f"{location}/audience",
    ):
        refused = await viewer.post(path, data={**FORM, "csrf_token": viewer.csrf})
        assert refused.status_code == 403, path
    assert (await viewer.get(f"/v1/broadcasts/{location.rsplit('/', 1)[1]}")).json()["status"] == "draft"
    missing = await viewer.get("/console/broadcasts/nope")
    assert missing.status_code == 404 and "no such broadcast" in missing.text
