"""The interaction REST API (no worker): auth, rules and sends."""

import httpx

from ecrm_interaction.app import create_app
from ecrm_interaction.rule_matching import RuleSpec, TemplateSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.store import Store, make_engine, migrate


async def test_api_requires_the_token_and_lists_rules_and_sends(tmp_path) -> None:
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token="t0ken")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    store.upsert_rules([TemplateSpec(id="t", subject="s", text="x")],
                       [RuleSpec(id="r", name="R", trigger_event="identify", template_id="t")])  # fmt: skip
    send = store.claim_send(dedup_key="r:u1", rule_id="r", customer_id="u1", trigger_message_id="m1")
    assert send is not None
    store.finish_send(send.id, status="skipped", reason="no_email_address")

    transport = httpx.ASGITransport(app=create_app(settings, store, worker=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://interaction") as http:
        denied = await http.get("/v1/rules")
        wrong = await http.get("/v1/rules", headers={"Authorization": "Bearer nope"})
        auth = {"Authorization": "Bearer t0ken"}
        rules = await http.get("/v1/rules", headers=auth)
        sends = await http.get("/v1/sends", params={"customer_id": "u1"}, headers=auth)
        health = await http.get("/readyz")
    assert denied.status_code == wrong.status_code == 401
    assert denied.json()["error"]["code"] == "unauthorized"
    assert [r["id"] for r in rules.json()] == ["r"]
    assert [(s["status"], s["reason"]) for s in sends.json()] == [("skipped", "no_email_address")]
    assert health.json() == {"status": "ready"}
