"""The interaction REST API (no worker): roles, rules, dry runs, imports, cases, the customer
view and one-click unsubscribe."""

from datetime import UTC, datetime

import httpx
import pytest
from interaction_factories import change, rule, trigger

from ecrm_interaction.api.app import create_app
from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.engine.rules import LoyaltyProgram, TemplateSpec
from ecrm_interaction.engine.unsubscribe import UnsubscribeToken, sign_unsubscribe
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import audit as audit_log
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.contacts import contact as contact_of
from ecrm_interaction.storage.store import Store, make_engine, migrate

ADMIN = {"Authorization": "Bearer t0ken"}


@pytest.fixture
def store_and_settings(tmp_path):
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="t0ken")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    store.write(
        rule_store.upsert_rules, [TemplateSpec(id="t", subject="Hi {{ traits.firstName }}", text="x")], [rule()]
    )
    return store, settings


@pytest.fixture
async def http(store_and_settings):
    store, settings = store_and_settings
    transport = httpx.ASGITransport(app=create_app(settings, store, worker=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://interaction") as client:
        yield client


async def _token(http, role: str) -> dict[str, str]:
    created = await http.post("/v1/tokens", json={"name": f"{role}-1", "role": role}, headers=ADMIN)
    assert created.status_code == 201
    return {"Authorization": f"Bearer {created.json()['token']}"}


async def test_tokens_and_roles_decide_who_may_do_what(http) -> None:
    viewer, marketer = await _token(http, "viewer"), await _token(http, "marketer")
    assert (await http.get("/v1/rules")).status_code == 401
    assert (await http.get("/v1/rules", headers={"Authorization": "Bearer nope"})).json()["error"][
        "code"
    ] == "unauthorized"
    assert [r["id"] for r in (await http.get("/v1/rules", headers=viewer)).json()] == ["r"]
    denied = await http.post("/v1/rules/r/disable", headers=viewer)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    assert (await http.post("/v1/rules/r/disable", headers=marketer)).json()["enabled"] is False
    assert (await http.get("/v1/audit", headers=marketer)).status_code == 403
    audit = (await http.get("/v1/audit", headers=ADMIN)).json()
    assert (audit[0]["actor"], audit[0]["action"], audit[0]["entity_id"]) == ("marketer-1", "disable", "r")
    assert (await http.delete("/v1/tokens/viewer-1", headers=ADMIN)).status_code == 204
    assert (await http.get("/v1/rules", headers=viewer)).status_code == 401  # revoked


async def test_rules_are_created_replaced_validated_and_deleted(http) -> None:
    new = rule(id="big-order", trigger={"kind": "event", "event": "Order Completed", "where": {"total": {"gt": 100}}})
    body = new.model_dump(mode="json")
    assert (await http.post("/v1/rules", json=body, headers=ADMIN)).status_code == 201
    assert (await http.post("/v1/rules", json=body, headers=ADMIN)).status_code == 409
    body["name"] = "Big orders"
    assert (await http.put("/v1/rules/big-order", json=body, headers=ADMIN)).json()["name"] == "Big orders"
    bad = await http.post("/v1/rules", json={**body, "id": "x", "actions": []}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["error"]["errors"][0]["field"] == "actions"
    unknown = await http.post(
        "/v1/rules", json={**body, "id": "y", "actions": [{"kind": "email", "template": "no"}]}, headers=ADMIN
    )
    assert unknown.status_code == 422 and "do not exist" in unknown.json()["error"]["message"]
    assert (await http.delete("/v1/rules/big-order", headers=ADMIN)).status_code == 204
    assert (await http.get("/v1/rules/big-order", headers=ADMIN)).status_code == 404


async def test_a_yaml_file_imports_rules_templates_and_the_loyalty_program(http) -> None:
    yaml = """
templates: [{id: promo, subject: "Promo", text: "Hello"}]
rules: [{id: promo, name: Promo, trigger: {kind: segment, segment: vip}, actions: [{kind: email, template: promo}]}]
loyalty: {points_per_unit: 2, tiers: [{name: basic, min_points: 0}, {name: vip, min_points: 100}]}
"""
    imported = await http.post("/v1/rules/import", content=yaml, headers={**ADMIN, "Content-Type": "application/yaml"})
    assert imported.json() == {"templates": 1, "rules": 1}
    assert (await http.get("/v1/loyalty/program", headers=ADMIN)).json()["points_per_unit"] == 2
    broken = await http.post("/v1/rules/import", content="rules: [{id: 1}]", headers=ADMIN)
    assert broken.status_code == 422


async def test_a_dry_run_explains_trigger_conditions_and_policy(http, store_and_settings) -> None:
    store, _ = store_and_settings
    with store.sessions.begin() as session:
        IntakeStep(store, "s").profile_change(
            session,
            change(trigger(message_id="m0"), firstName="Ada"),
            [],
            LoyaltyProgram(),
            datetime.now(UTC),
            Intake(),
        )
    spec = rule(
        id="gated",
        conditions={
            "kind": "all",
            "conditions": [
                {"kind": "trait", "trait": "orders", "op": "gte", "value": 1},
                {"kind": "segment", "segment": "vip"},
            ],
        },
    )
    await http.post("/v1/rules", json=spec.model_dump(mode="json"), headers=ADMIN)
    event = {"message_id": "x", "type": "identify", "timestamp": "2026-11-20T10:00:00Z"}
    result = (
        await http.post("/v1/rules/gated/dry-run", json={"customer_id": "u1", "event": event}, headers=ADMIN)
    ).json()
    assert result["trigger"]["matched"] is True and result["would_fire"] is False
    assert [p["met"] for p in result["conditions"]["parts"]] == [True, False]
    [email] = result["actions"]
    assert email["subject"] == "Hi Ada" and email["policy"]["outcome"] in ("send", "defer")
    assert store.read(action_store.recent, customer_id="u1") == []  # nothing was written


async def test_one_click_unsubscribe_is_idempotent_and_a_prefetch_changes_nothing(http, store_and_settings) -> None:
    store, settings = store_and_settings
    token = sign_unsubscribe(
        UnsubscribeToken(customer_id="u1", email_id="e1"), settings.tracking_secret.get_secret_value()
    )
    page = await http.get(f"/u/{token}")
    assert page.status_code == 200 and 'method="post"' in page.text
    assert not store.read(contact_of, "u1").unsubscribed  # a GET (a link prefetcher) unsubscribes nobody
    one_click = {"Content-Type": "application/x-www-form-urlencoded"}
    first = await http.post(f"/u/{token}", content="List-Unsubscribe=One-Click", headers=one_click)
    again = await http.post(f"/u/{token}", content="List-Unsubscribe=One-Click", headers=one_click)
    assert first.status_code == again.status_code == 200 and first.json() == again.json() == {"status": "unsubscribed"}
    assert store.read(contact_of, "u1").unsubscribed and store.read(contact_of, "u1").consent == {"email": False}
    assert (await http.post(f"/u/{token[:-2]}xx")).status_code == 400  # tampered


async def test_cases_consent_and_the_customer_view(http, store_and_settings) -> None:
    store, _ = store_and_settings
    with store.sessions.begin() as session:
        IntakeStep(store, "s").profile_change(
            session,
            change(trigger("track", "Order Completed", message_id="o1", order_id="o1", total=120)),
            [],
            LoyaltyProgram(),
            datetime.now(UTC),
            Intake(),
        )
    created = await http.post(
        "/v1/cases",
        json={"customer_id": "u1", "subject": "Parcel lost", "priority": "urgent", "sla_hours": 4},
        headers=ADMIN,
    )
    case_id = created.json()["id"]
    await http.post(f"/v1/cases/{case_id}/notes", json={"text": "Called the carrier"}, headers=ADMIN)
    updated = await http.patch(f"/v1/cases/{case_id}", json={"status": "pending", "assignee": "bob"}, headers=ADMIN)
    assert (updated.json()["status"], updated.json()["assignee"], updated.json()["notes"][0]["text"]) == (
        "pending",
        "bob",
        "Called the carrier",
    )
    consent = await http.put("/v1/customers/u1/consent/email", json={"granted": True}, headers=ADMIN)
    assert consent.status_code == 200
    view = (await http.get("/v1/customers/u1", headers=ADMIN)).json()
    assert view["identity"]["email"] == "ada@example.com" and view["profile"]["orders"] == 1
    assert view["contact"]["consent"]["email"]["granted"] is True
    assert [c["subject"] for c in view["cases"]] == ["Parcel lost"]
    assert view["loyalty"]["points"] == 120 and view["loyalty"]["tier"] == "bronze"
    assert (await http.get("/v1/customers/nobody", headers=ADMIN)).status_code == 404
    assert (await http.get("/v1/customers/u1/recommendations", headers=ADMIN)).status_code == 503  # no ClickHouse
    personal = (await http.get("/v1/customers/u1/personalization", headers=ADMIN)).json()
    assert personal["highlights"]["loyalty_points"] == 120 and personal["recommendations"] == []


async def test_every_route_is_in_the_openapi_document(http) -> None:
    spec = (await http.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/v1/rules",
        "/v1/rules/{rule_id}/dry-run",
        "/v1/rules/import",
        "/v1/customers/{customer_id}",
        "/v1/customers/{customer_id}/recommendations",
        "/v1/cases",
        "/u/{token}",
        "/v1/decisions",
    } <= paths


ROLE_OF = {
    ("GET", "/v1/rules"): "viewer", ("POST", "/v1/rules"): "marketer", ("GET", "/v1/rules/{rule_id}"): "viewer",
    ("PUT", "/v1/rules/{rule_id}"): "marketer", ("DELETE", "/v1/rules/{rule_id}"): "marketer",
    ("POST", "/v1/rules/{rule_id}/enable"): "marketer", ("POST", "/v1/rules/{rule_id}/disable"): "marketer",
    ("POST", "/v1/rules/import"): "marketer", ("POST", "/v1/rules/{rule_id}/dry-run"): "viewer",
    ("GET", "/v1/templates"): "viewer", ("PUT", "/v1/templates/{template_id}"): "marketer",
    ("DELETE", "/v1/templates/{template_id}"): "marketer",
    ("GET", "/v1/loyalty/program"): "viewer", ("PUT", "/v1/loyalty/program"): "marketer",
    ("GET", "/v1/segments"): "viewer", ("GET", "/v1/segments/{segment_id}"): "viewer",
    ("PUT", "/v1/segments/{segment_id}"): "marketer", ("DELETE", "/v1/segments/{segment_id}"): "marketer",
    ("GET", "/v1/decisions"): "viewer", ("GET", "/v1/sends"): "viewer",
    ("GET", "/v1/customers/{customer_id}"): "viewer", ("GET", "/v1/customers/{customer_id}/export"): "admin",
    ("DELETE", "/v1/customers/{customer_id}"): "admin", ("GET", "/v1/customers/{customer_id}/loyalty"): "viewer",
    ("PUT", "/v1/customers/{customer_id}/consent/{channel}"): "marketer",
    ("GET", "/v1/customers/{customer_id}/recommendations"): "viewer",
    ("GET", "/v1/customers/{customer_id}/personalization"): "viewer",
    ("GET", "/v1/cases"): "viewer", ("POST", "/v1/cases"): "agent", ("GET", "/v1/cases/{case_id}"): "viewer",
    ("PATCH", "/v1/cases/{case_id}"): "agent", ("POST", "/v1/cases/{case_id}/notes"): "agent",
    ("GET", "/v1/suppressions"): "viewer", ("POST", "/v1/suppressions/lift"): "admin",
    ("GET", "/v1/tokens"): "admin", ("POST", "/v1/tokens"): "admin", ("DELETE", "/v1/tokens/{name}"): "admin",
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/users"): "admin", ("POST", "/v1/users"): "admin", ("PATCH", "/v1/users/{email}"): "admin",
    ("POST", "/v1/sessions"): "public", ("DELETE", "/v1/sessions"): "viewer", ("GET", "/v1/me"): "viewer",
    # --- issue 18, customers: its API routes below ---
    ("GET", "/v1/customers"): "viewer", ("GET", "/v1/customers/{customer_id}/identity"): "viewer",
    ("GET", "/v1/customers/{customer_id}/timeline"): "viewer",
    ("GET", "/v1/customers/{customer_id}/messages"): "viewer",
    # (end of customers)
    # --- issue 18, segments-home: its API routes below ---
    ("GET", "/v1/segment-sizes"): "viewer", ("POST", "/v1/segments/preview"): "marketer",
    ("GET", "/v1/segments/{segment_id}/members"): "viewer", ("GET", "/v1/segments/{segment_id}/members.csv"): "viewer",
    ("GET", "/v1/segments/{segment_id}/changes"): "viewer", ("GET", "/v1/figures"): "viewer",
    # (end of segments-home)
    # --- issue 18, rules-templates: its API routes below ---
    ("GET", "/v1/rules/figures"): "viewer", ("GET", "/v1/rules/{rule_id}/history"): "viewer",
    ("POST", "/v1/templates/preview"): "viewer", ("GET", "/v1/templates/{template_id}"): "viewer",
    ("GET", "/v1/templates/{template_id}/versions"): "viewer",
    ("POST", "/v1/templates/{template_id}/test-send"): "marketer",
    # (end of rules-templates)
    # --- issue 18, broadcasts: its API routes below ---
    ("GET", "/v1/broadcasts"): "viewer", ("POST", "/v1/broadcasts"): "marketer",
    ("GET", "/v1/broadcasts/{broadcast_id}"): "viewer", ("PUT", "/v1/broadcasts/{broadcast_id}"): "marketer",
    ("GET", "/v1/broadcasts/{broadcast_id}/audience"): "viewer",
    ("POST", "/v1/broadcasts/{broadcast_id}/audience"): "marketer",
    ("POST", "/v1/broadcasts/{broadcast_id}/schedule"): "marketer",
    ("POST", "/v1/broadcasts/{broadcast_id}/pause"): "marketer",
    ("POST", "/v1/broadcasts/{broadcast_id}/resume"): "marketer",
    ("POST", "/v1/broadcasts/{broadcast_id}/cancel"): "marketer",
    ("GET", "/v1/broadcasts/{broadcast_id}/results"): "viewer",
    # (end of broadcasts)
    # --- issue 18, cases-loyalty: its API routes below ---
    ("GET", "/v1/cases/summary"): "viewer", ("GET", "/v1/loyalty/tiers"): "viewer",
    ("GET", "/v1/loyalty/rewards"): "viewer",
    # (end of cases-loyalty)
    # --- issue 18, data: its API routes below ---
    ("GET", "/v1/sources"): "admin", ("POST", "/v1/sources"): "admin",
    ("POST", "/v1/sources/{name}/revoke"): "admin",
    ("GET", "/v1/dead-letters"): "viewer", ("POST", "/v1/dead-letters/replay"): "admin",
    ("GET", "/v1/catalog"): "viewer", ("GET", "/v1/pipeline"): "viewer",
    # (end of data)
    # --- issue 19, reports ---
    ("GET", "/v1/reports"): "viewer", ("GET", "/v1/reports/{name}"): "viewer",
    ("GET", "/v1/reports/{name}/customers"): "viewer",
    ("GET", "/v1/saved-reports"): "viewer", ("POST", "/v1/saved-reports"): "marketer",
    ("GET", "/v1/saved-reports/{report_id}"): "viewer", ("PUT", "/v1/saved-reports/{report_id}"): "marketer",
    ("DELETE", "/v1/saved-reports/{report_id}"): "marketer", ("GET", "/v1/saved-reports/{report_id}/result"): "viewer",
    ("GET", "/v1/dashboards"): "viewer", ("POST", "/v1/dashboards"): "marketer",
    ("GET", "/v1/dashboards/{dashboard_id}"): "viewer", ("PUT", "/v1/dashboards/{dashboard_id}"): "marketer",
    ("DELETE", "/v1/dashboards/{dashboard_id}"): "marketer",
    ("GET", "/v1/report-subscriptions"): "viewer", ("POST", "/v1/report-subscriptions"): "marketer",
    ("DELETE", "/v1/report-subscriptions/{subscription_id}"): "marketer",
    ("POST", "/v1/report-subscriptions/{subscription_id}/send"): "marketer",
    # --- issue 20, the assistant: the widget's routes check the write key or the conversation's token ---
    ("GET", "/v1/chat.js"): "public", ("GET", "/chat-demo"): "public", ("POST", "/v1/chat/conversations"): "public",
    ("GET", "/v1/chat/conversations/{conversation_id}"): "public",
    ("POST", "/v1/chat/conversations/{conversation_id}/messages"): "public",
    ("POST", "/v1/chat/conversations/{conversation_id}/handoff"): "public",
    ("POST", "/v1/chat/conversations/{conversation_id}/contact"): "public",
    ("POST", "/v1/chat/conversations/{conversation_id}/rating"): "public",
    ("GET", "/v1/knowledge-base/articles"): "viewer", ("GET", "/v1/knowledge-base/articles/{article_id}"): "viewer",
    ("PUT", "/v1/knowledge-base/articles/{article_id}"): "marketer",
    ("DELETE", "/v1/knowledge-base/articles/{article_id}"): "marketer",
    ("POST", "/v1/knowledge-base/import"): "marketer", ("GET", "/v1/knowledge-base/try"): "viewer",
    ("GET", "/v1/conversations"): "viewer", ("GET", "/v1/conversations/{conversation_id}"): "viewer",
    ("POST", "/v1/conversations/{conversation_id}/replies"): "agent",
    ("GET", "/v1/assistant/figures"): "viewer", ("GET", "/v1/assistant/unanswered"): "viewer",
    ("GET", "/u/{token}"): "public", ("POST", "/u/{token}"): "public",
    ("GET", "/livez"): "public", ("GET", "/readyz"): "public", ("GET", "/metrics"): "public",
}  # fmt: skip
"""The least role of every route. A new route fails the test below until it is listed here."""
RANK = {"viewer": 0, "agent": 1, "marketer": 2, "admin": 3}


def served(app) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, as its OpenAPI document lists them."""
    return {(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations}


def test_every_route_module_is_included_in_the_app(http) -> None:
    """Each module of ``api/routes/`` builds a router with ``router(...)``, and ``create_app``
    includes it: a route module left out of the app fails here, naming it."""
    import importlib
    import inspect
    import pkgutil

    from fastapi import APIRouter
    from fastapi.routing import APIRoute

    from ecrm_interaction.api import routes as route_modules

    app_routes = served(http._transport.app)
    for info in pkgutil.iter_modules(route_modules.__path__):
        module = importlib.import_module(f"{route_modules.__name__}.{info.name}")
        assert callable(getattr(module, "router", None)), f"api/routes/{info.name}.py: define router(...) -> APIRouter"
        router = module.router(*[None] * len(inspect.signature(module.router).parameters))
        assert isinstance(router, APIRouter), f"api/routes/{info.name}.py: router(...) must return an APIRouter"
        defined = {(m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
        assert defined, f"api/routes/{info.name}.py defines no route"
        missing = defined - app_routes
        assert not missing, (
            f"api/routes/{info.name}.py defines {sorted(missing)}, which the app does not serve: "
            f"add app.include_router({info.name}.router(...)) to create_app in api/app.py"
        )


async def test_every_route_refuses_who_may_not_use_it(http, store_and_settings) -> None:
    """No token or a collector write key: 401 everywhere but the public routes. A role below
    the route's: 403, before the body is even looked at (no change is made)."""
    app = http._transport.app  # the ASGI app under test
    routes = served(app)
    assert routes <= set(ROLE_OF), (
        f"list the least role of these new routes in ROLE_OF: {sorted(routes - set(ROLE_OF))}"
    )
    assert set(ROLE_OF) <= routes, (
        f"the app no longer serves these routes: remove them from ROLE_OF: {sorted(set(ROLE_OF) - routes)}"
    )
    tokens = {"viewer": await _token(http, "viewer"), "agent": await _token(http, "agent"),
              "marketer": await _token(http, "marketer"), "admin": ADMIN}  # fmt: skip
    store, _ = store_and_settings
    audit_before = len(store.read(audit_log.recent, limit=1000))
    for (method, path), least in sorted(ROLE_OF.items()):
        if least == "public":
            continue
        url = path.format(rule_id="r", template_id="t", segment_id="s", customer_id="u1", channel="email",
                          case_id="c", name="admin-token", email="a@b.c", broadcast_id="b", report_id="sr",
                              dashboard_id="d", subscription_id="s", article_id="a",
                          conversation_id="c")  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer ecrm_dev_write_key"}, {"Authorization": "Basic dGVzdDo="}):
            answer = await http.request(method, url, headers=headers, json={})
            assert answer.status_code == 401, (method, path, headers)
            assert answer.json()["error"]["code"] == "unauthorized"
        for role, headers in tokens.items():
            if RANK[role] < RANK[least]:
                answer = await http.request(method, url, headers=headers, json={})
                assert (answer.status_code, answer.json()["error"]["code"]) == (403, "forbidden"), (method, path, role)
    assert len(store.read(audit_log.recent, limit=1000)) == audit_before, "a refused request changed nothing"
    assert store.read(rule_store.rule, "r") is not None and store.read(rule_store.rule, "r").enabled


async def test_a_request_that_fails_after_writing_leaves_nothing(http, store_and_settings) -> None:
    """One unit of work per request: what a refused request wrote is rolled back with it."""
    store, _ = store_and_settings
    assert (await http.post("/v1/tokens", json={"name": "dup", "role": "viewer"}, headers=ADMIN)).status_code == 201
    again = await http.post("/v1/tokens", json={"name": "dup", "role": "agent"}, headers=ADMIN)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "token_exists")
    created = [e for e in store.read(audit_log.recent, 1000) if (e.action, e.entity_id) == ("create", "dup")]
    assert len(created) == 1, "the refused second token left no audit entry"
    yaml = "templates: [{id: t9, subject: S, text: x}]\nrules: [{id: r9, name: R, trigger: {kind: event, event: X}, "
    yaml += "actions: [{kind: email, template: nope}]}]\n"
    refused = await http.post("/v1/rules/import", content=yaml, headers={**ADMIN, "content-type": "application/yaml"})
    assert refused.status_code == 422, refused.text
    assert "t9" not in store.read(rule_store.templates), "the file's templates were rolled back with its rules"


async def test_templates_are_validated_when_saved_and_deleted_only_when_no_rule_uses_them(http) -> None:
    broken = {"id": "news", "subject": "News", "text": "Hello\n{{ traits.firstName }\nBye"}
    refused = await http.put("/v1/templates/news", json=broken, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["error"]["errors"]
    assert (error["field"], error["rule"]) == ("text", "template_syntax") and "line 2" in error["message"]
    unknown_filter = {"id": "news", "subject": "{{ traits.firstName | shout }}", "text": "x"}
    [error] = (await http.put("/v1/templates/news", json=unknown_filter, headers=ADMIN)).json()["error"]["errors"]
    assert (error["field"], error["rule"]) == ("subject", "template_syntax") and "shout" in error["message"]
    yaml = "templates: [{id: promo, subject: Promo, text: Hi, html: '<p>{% if x %}</p>'}]\n"
    imported = await http.post("/v1/rules/import", content=yaml, headers={**ADMIN, "content-type": "application/yaml"})
    assert imported.status_code == 422, imported.text
    [error] = imported.json()["error"]["errors"]
    assert (error["field"], error["rule"]) == ("templates.0.html", "template_syntax") and "line 1" in error["message"]
    assert "news" not in [t["id"] for t in (await http.get("/v1/templates", headers=ADMIN)).json()]

    assert (await http.put("/v1/templates/news", json={**broken, "text": "Hello"}, headers=ADMIN)).status_code == 200
    assert (await http.delete("/v1/templates/news", headers=ADMIN)).status_code == 204
    assert (await http.delete("/v1/templates/news", headers=ADMIN)).status_code == 404
    in_use = await http.delete("/v1/templates/t", headers=ADMIN)
    assert in_use.status_code == 409 and "'r'" in in_use.json()["error"]["message"], in_use.text
    assert [t["id"] for t in (await http.get("/v1/templates", headers=ADMIN)).json()] == ["t"]
    audit = (await http.get("/v1/audit", headers=ADMIN)).json()
    assert ("delete", "template", "news") in [(a["action"], a["entity"], a["entity_id"]) for a in audit]
