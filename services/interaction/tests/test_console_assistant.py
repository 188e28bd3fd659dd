"""The console's Assistant pages (issue 20): the knowledge base imported from YAML (a bad file
named at the field), an article edited per language (an empty language row is no translation,
a refused save shows what was typed), a question tried, a conversation's transcript with the
agent's reply, and the roles: a viewer reads, only a marketer writes articles."""

from __future__ import annotations

from datetime import UTC, datetime

from ecrm_interaction.storage import conversations

KNOWLEDGE = """articles:
  - id: returns-policy
    translations:
      en: {title: "How do I return an item?", body: "Within 30 days.", questions: ["Can I send it back?"]}
"""


async def test_a_marketer_imports_and_edits_articles_and_a_viewer_only_reads(console_app, console_as) -> None:
    marketer = await console_as("marketer")
    bad_file = "articles: [{id: Bad Id, translations: {}}]"
    bad = await marketer.post("/console/assistant/import", data={"csrf_token": marketer.csrf, "yaml": bad_file})
    assert bad.status_code == 422 and "articles.0.id" in bad.text
    imported = await marketer.post("/console/assistant/import", data={"csrf_token": marketer.csrf, "yaml": KNOWLEDGE})
    assert imported.status_code == 303 and imported.headers["location"].endswith("notice=imported-1-0")
    listed = await marketer.get("/console/assistant/articles")
    assert (
        "How do I return an item?" in listed.text
        and "Imported: 1 new, 0 replaced." in (await marketer.get(imported.headers["location"])).text
    )

    form = await marketer.get("/console/assistant/articles/returns-policy")
    assert form.status_code == 200 and 'name="title_0" value="How do I return an item?"' in form.text
    rows = form.text.count('name="language_')
    fields = {"csrf_token": marketer.csrf, "rows": str(rows), "tags": "returns, policy",
              "language_0": "en", "title_0": "How do I return an item?", "body_0": "Within 30 days.",
              "questions_0": "Can I send it back?\nHow do returns work?",
              "language_1": "de", "title_1": "Wie schicke ich etwas zurück?", "body_1": "Innerhalb von 30 Tagen.",
              "questions_1": "", "language_2": "es"}  # fmt: skip
    saved = await marketer.post("/console/assistant/articles/returns-policy", data=fields)
    assert saved.status_code == 303
    article = (await marketer.get("/v1/knowledge-base/articles/returns-policy")).json()
    assert sorted(article["translations"]) == ["de", "en"]  # the language code alone ("es") is no translation
    assert article["tags"] == ["returns", "policy"] and len(article["translations"]["en"]["questions"]) == 2

    refused = await marketer.post("/console/assistant/articles/returns-policy",
                                  data={**fields, "language_1": "deutsch"})  # fmt: skip
    assert refused.status_code == 422 and "deutsch" in refused.text and "Wie schicke ich etwas zurück?" in refused.text

    tried = await marketer.get("/console/assistant", params={"q": "can I send my shoes back"})
    assert tried.status_code == 200 and "returns-policy" in tried.text

    viewer = await console_as("viewer")
    page = await viewer.get("/console/assistant/articles/returns-policy")
    assert page.status_code == 200 and "Save the article" not in page.text
    denied = await viewer.post("/console/assistant/articles/returns-policy", data={**fields, "csrf_token": viewer.csrf})
    assert denied.status_code == 403


async def test_an_agent_answers_a_conversation_from_its_page(console_app, console_as) -> None:
    _app, store = console_app
    now = datetime.now(UTC)
    with store.sessions.begin() as session:
        chat = conversations.start(session, conversations.Opening("tok", "website", "ada", True, "en", "/shoes"),
                                   "Hi!", now)  # fmt: skip
        conversations.add_message(session, chat, "visitor", "Is anyone there? <b>urgent</b>", now)
        conversations.hand_off(
            session, chat, conversations.HandOff("Website chat", "normal", 8, "requested", True), now
        )
        chat_id = chat.id
    agent = await console_as("agent")
    page = await agent.get(f"/console/assistant/conversations/{chat_id}")
    assert page.status_code == 200 and "waiting for a person" in page.text
    assert "&lt;b&gt;urgent&lt;/b&gt;" in page.text  # the visitor's text is shown as text
    empty = await agent.post(f"/console/assistant/conversations/{chat_id}/replies",
                             data={"csrf_token": agent.csrf, "text": ""})  # fmt: skip
    assert empty.status_code == 422
    sent = await agent.post(f"/console/assistant/conversations/{chat_id}/replies",
                            data={"csrf_token": agent.csrf, "text": "Hello Ada, Lena here."})  # fmt: skip
    assert sent.status_code == 303
    after = await agent.get(sent.headers["location"])
    assert "Hello Ada, Lena here." in after.text and "a person answers" in after.text
    overview = await agent.get("/console/assistant")
    assert overview.status_code == 200 and chat_id in overview.text
