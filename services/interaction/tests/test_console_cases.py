"""The console's cases (issue 18): the queue's order, filters and pages; a case with the
customer's context; each form (assign, note, status, priority, open) as one API call with
inline errors naming the field and nothing half-saved; a viewer sees no action and is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import update

from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage.models import Case, Customer


async def _open(
    client, customer_id: str, subject: str, priority: str = "normal", sla_hours: float = 24, **extra
) -> str:
    body = {"customer_id": customer_id, "subject": subject, "priority": priority, "sla_hours": sla_hours, **extra}
    answer = await client.post("/v1/cases", json=body, headers={"X-CSRF-Token": client.csrf})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _past_due(store, case_id: str, hours: float) -> None:
    def change(session) -> None:
        session.execute(
            update(Case).where(Case.id == case_id).values(sla_due_at=datetime.now(UTC) - timedelta(hours=hours))
        )

    store.write(change)


def _subjects(html: str) -> list[str]:
    return re.findall(r'<a href="/console/cases/[0-9a-f-]{36}">([^<]+)</a>', html)


def _case(store, case_id: str) -> Case:
    found = store.read(case_store.case, case_id)
    assert found is not None
    return found[0]


async def test_the_queue_shows_overdue_cases_first_marked_then_by_priority_and_sla(console_app, console_as) -> None:
    _, store = console_app
    agent = await console_as("agent")
    await _open(agent, "u1", "Low and soon", "low", 1)
    await _open(agent, "u2", "Urgent, due later", "urgent", 48)
    await _open(agent, "u3", "Urgent, due soon", "urgent", 2)
    late = await _open(agent, "u4", "Normal but late", "normal")
    mine = await _open(agent, "u5", "High and mine", "high", 30, assignee=agent.email)
    _past_due(store, late, 3)

    page = await agent.get("/console/cases")
    assert page.status_code == 200
    assert _subjects(page.text) == ["Normal but late", "Urgent, due soon", "Urgent, due later", "High and mine",
                                    "Low and soon"]  # fmt: skip
    [late_row] = [row for row in page.text.split("<tr") if "Normal but late" in row]
    assert 'class="overdue"' in late_row and "Overdue" in late_row
    assert page.text.count('<span class="badge bad">Overdue</span>') == 1
    assert '<a href="/console/customers/u4">u4</a>' in page.text

    assert _subjects((await agent.get("/console/cases?assignee=mine")).text) == ["High and mine"]
    unassigned = _subjects((await agent.get("/console/cases?assignee=unassigned")).text)
    assert "High and mine" not in unassigned and len(unassigned) == 4
    assert _subjects((await agent.get("/console/cases?priority=urgent")).text) == [
        "Urgent, due soon",
        "Urgent, due later",
    ]
    await agent.patch(f"/v1/cases/{mine}", json={"status": "resolved"}, headers={"X-CSRF-Token": agent.csrf})
    assert "High and mine" not in _subjects((await agent.get("/console/cases")).text), "the queue is what is left to do"
    assert _subjects((await agent.get("/console/cases?status=resolved")).text) == ["High and mine"]


async def test_the_queue_is_paginated(console_as) -> None:
    agent = await console_as("agent")
    for n in range(27):
        await _open(agent, f"u{n}", f"Case {n:02d}", "normal", 1 + n)
    first = await agent.get("/console/cases")
    assert _subjects(first.text) == [f"Case {n:02d}" for n in range(25)]
    assert 'href="/console/cases?page=2"' in first.text and "Previous page" not in first.text
    second = await agent.get("/console/cases?page=2")
    assert _subjects(second.text) == ["Case 25", "Case 26"] and "Next page" not in second.text
    filtered = await agent.get("/console/cases?priority=normal")
    assert 'href="/console/cases?priority=normal&amp;page=2"' in filtered.text, "the next page keeps the filters"


async def test_a_case_shows_the_customers_context_beside_it(console_app, console_as) -> None:
    _, store = console_app
    profile = {"traits": {"email": "nina@example.com", "firstName": "Nina"}, "computed": {"lifecycle_stage": "active"}}

    def seed(session) -> None:
        session.add(Customer(customer_id="nina", email="nina@example.com", profile=orjson.dumps(profile).decode()))

    store.write(seed)
    agent = await console_as("agent")
    earlier = await _open(agent, "nina", "Wrong size delivered")
    case_id = await _open(agent, "nina", "NPS 3 from nina@example.com", "high")
    page = await agent.get(f"/console/cases/{case_id}")
    assert page.status_code == 200
    html = page.text
    assert "NPS 3 from nina@example.com" in html and "nina@example.com" in html and "Nina" in html
    assert "active" in html, "the customer's scores"
    assert f'<a href="/console/cases/{earlier}">Wrong size delivered</a>' in html, "the customer's other cases"
    assert 'href="/console/customers/nina"' in html, "a link to the customer 360"
    assert "no escalation address is set" in html
    for label in ("Assign to me", "Add the note", "Resolve", "Change the status", "Change the priority"):
        assert label in html, label
    assert (await agent.get("/console/cases/not-a-case")).status_code == 404


async def test_an_agent_assigns_notes_reprioritises_and_resolves_a_case(console_app, console_as) -> None:
    _, store = console_app
    agent = await console_as("agent")
    case_id = await _open(agent, "u1", "Parcel lost")
    form = {"csrf_token": agent.csrf}

    answer = await agent.post(f"/console/cases/{case_id}", data=form | {"form": "assign", "assignee": "me"})
    assert (answer.status_code, answer.headers["location"]) == (303, f"/console/cases/{case_id}")
    assert _case(store, case_id).assignee == agent.email
    assert "Assign to me" not in (await agent.get(f"/console/cases/{case_id}")).text, "it is hers already"

    answer = await agent.post(
        f"/console/cases/{case_id}/notes", data=form | {"text": "Called her: a new parcel leaves today."}
    )
    assert answer.status_code == 303
    assert "Called her: a new parcel leaves today." in (await agent.get(f"/console/cases/{case_id}")).text

    await agent.post(f"/console/cases/{case_id}", data=form | {"form": "priority", "priority": "urgent"})
    await agent.post(f"/console/cases/{case_id}", data=form | {"form": "assign", "assignee": "sam@shop.example.com"})
    assert (_case(store, case_id).priority, _case(store, case_id).assignee) == ("urgent", "sam@shop.example.com")
    await agent.post(f"/console/cases/{case_id}", data=form | {"form": "assign", "assignee": ""})
    assert _case(store, case_id).assignee is None, "an empty assignee: nobody"

    answer = await agent.post(f"/console/cases/{case_id}", data=form | {"form": "status", "status": "resolved"})
    assert answer.status_code == 303
    resolved = _case(store, case_id)
    assert resolved.status == "resolved" and resolved.resolved_at is not None
    assert "Resolve</button>" not in (await agent.get(f"/console/cases/{case_id}")).text


async def test_refused_changes_are_named_inline_and_change_nothing(console_app, console_as) -> None:
    _, store = console_app
    agent = await console_as("agent")
    case_id = await _open(agent, "u1", "Parcel lost", "high")
    form = {"csrf_token": agent.csrf}

    refused = await agent.post(f"/console/cases/{case_id}", data=form | {"form": "priority", "priority": "asap"})
    assert refused.status_code == 422
    assert re.search(r'<p id="e-priority" class="error" role="alert">Priority: Input should be', refused.text)
    assert _case(store, case_id).priority == "high"

    refused = await agent.post(f"/console/cases/{case_id}", data=form | {"form": "status", "status": "closed"})
    assert refused.status_code == 422 and 'id="e-status"' in refused.text and 'id="e-priority"' not in refused.text
    assert _case(store, case_id).status == "open"

    refused = await agent.post(f"/console/cases/{case_id}", data=form | {"form": "assign", "assignee": "x" * 300})
    assert refused.status_code == 422 and 'id="e-assignee"' in refused.text and "x" * 300 in refused.text
    assert _case(store, case_id).assignee is None

    refused = await agent.post(f"/console/cases/{case_id}/notes", data=form | {"text": "   "})
    assert refused.status_code == 422 and '<p id="e-text" class="error" role="alert">Note: ' in refused.text
    assert store.read(case_store.case, case_id)[1] == []  # type: ignore[index]

    gone = await agent.post("/console/cases/no-such-case", data=form | {"form": "status", "status": "pending"})
    assert gone.status_code == 404


async def test_an_agent_opens_a_case_for_a_customer_and_bad_input_is_named(console_app, console_as) -> None:
    _, store = console_app
    agent = await console_as("agent")
    page = await agent.get("/console/cases/new?customer_id=u7")
    assert page.status_code == 200 and 'name="customer_id" type="text" value="u7"' in page.text

    form = {"csrf_token": agent.csrf, "customer_id": "u7", "subject": "", "priority": "normal", "sla_hours": "-2",
            "assignee": ""}  # fmt: skip
    refused = await agent.post("/console/cases", data=form)
    assert refused.status_code == 422
    assert 'id="e-subject"' in refused.text and 'id="e-sla_hours"' in refused.text and 'value="-2"' in refused.text
    assert store.read(case_store.cases, "u7") == [], "nothing half-saved"

    opened = await agent.post("/console/cases", data=form | {"subject": "Wants an invoice", "sla_hours": "8"})
    assert opened.status_code == 303
    [case] = store.read(case_store.cases, "u7")
    assert opened.headers["location"] == f"/console/cases/{case.id}"
    assert (case.subject, case.assignee) == ("Wants an invoice", None)


async def test_a_viewer_sees_cases_but_no_action_and_is_refused(console_as) -> None:
    agent = await console_as("agent")
    case_id = await _open(agent, "u1", "Parcel lost")
    viewer = await console_as("viewer")
    page = await viewer.get(f"/console/cases/{case_id}")
    assert page.status_code == 200 and "Parcel lost" in page.text
    assert "<button" not in page.text.replace('<button type="submit">Sign out</button>', ""), "no action buttons"
    assert "Open a case" not in (await viewer.get("/console/cases")).text
    form = {"csrf_token": viewer.csrf}
    assert (await viewer.post(f"/console/cases/{case_id}", data=form | {"status": "resolved"})).status_code == 403
    assert (await viewer.post(f"/console/cases/{case_id}/notes", data=form | {"text": "hi"})).status_code == 403
    assert (await viewer.get("/console/cases/new")).status_code == 403
    api = await viewer.patch(f"/v1/cases/{case_id}", json={"status": "resolved"}, headers={"X-CSRF-Token": viewer.csrf})
    assert api.status_code == 403, "the API refuses a viewer anyway"


async def test_an_escalated_case_says_when_it_was_escalated(console_app, console_as) -> None:
    _, store = console_app
    agent = await console_as("agent")
    case_id = await _open(agent, "u1", "Still waiting for a refund", "high", 1)
    _past_due(store, case_id, 2)
    assert [c.id for c in store.write(case_store.claim_escalations, datetime.now(UTC))] == [case_id]

    page = await agent.get(f"/console/cases/{case_id}")
    assert '<span class="badge warn">Escalated</span>' in page.text and "Overdue" in page.text
    queue = await agent.get("/console/cases")
    [row] = [r for r in queue.text.split("<tr") if "Still waiting for a refund" in r]
    assert "escalated" in row and "Overdue" in row
