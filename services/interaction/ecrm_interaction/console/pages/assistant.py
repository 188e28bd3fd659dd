"""The website assistant as staff see it: how it does (answer rate, hand-offs, resolution
without a person, ratings), the unanswered questions grouped by similarity (what to write
next), the conversations with their transcripts and an agent's reply, a question tried against
the knowledge base, and the knowledge base itself (articles per language, edit, import)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import Staff, StaffDep
from ecrm_interaction.console.api import Answer
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/assistant"): "viewer",
    ("GET", "/console/assistant/conversations/{conversation_id}"): "viewer",
    ("POST", "/console/assistant/conversations/{conversation_id}/replies"): "agent",
    ("GET", "/console/assistant/articles"): "viewer",
    ("GET", "/console/assistant/articles/new"): "marketer",
    ("GET", "/console/assistant/articles/{article_id}"): "viewer",
    ("POST", "/console/assistant/articles/{article_id}"): "marketer",
    ("POST", "/console/assistant/articles/{article_id}/delete"): "marketer",
    ("POST", "/console/assistant/import"): "marketer",
}
ACTIONS = {
    ("POST", "/console/assistant/conversations/{conversation_id}/replies"): (
        "POST",
        "/v1/conversations/{conversation_id}/replies",
    ),
    ("POST", "/console/assistant/articles/{article_id}"): ("PUT", "/v1/knowledge-base/articles/{article_id}"),
    ("POST", "/console/assistant/articles/{article_id}/delete"): ("DELETE", "/v1/knowledge-base/articles/{article_id}"),
    ("POST", "/console/assistant/import"): ("POST", "/v1/knowledge-base/import"),
}
STATUSES = ("", "assistant", "waiting", "person", "closed")
EXTRA_LANGUAGES = 1
"""Empty translation rows the article form offers beyond the shop's languages."""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


async def conversation_context(staff: Staff, conversation_id: str) -> dict[str, Any] | None:
    """A conversation with its messages and the articles they showed (for the transcript macro)."""
    found = await staff.api.get(f"/v1/conversations/{conversation_id}")
    if not found.ok:
        return None
    conversation = found.body
    titles: dict[str, str] = {}
    if any(m["article_id"] for m in conversation["messages"]):
        articles = await staff.api.get("/v1/knowledge-base/articles")
        for article in articles.body if articles.ok else []:
            translations = article["translations"]
            shown = translations.get(conversation["language"]) or next(iter(translations.values()))
            titles[article["id"]] = shown["title"]
    return {"conversation": conversation, "article_titles": titles}


def _article_form(article: dict[str, Any] | None, languages: list[str]) -> dict[str, Any]:
    """The form's values: id, tags, and one row per language: those written (the shop's first),
    then the shop's other languages, then an empty one."""
    translations = (article or {}).get("translations", {})
    codes = [code for code in languages if code in translations]
    codes += sorted(code for code in translations if code not in codes)
    codes += [code for code in languages if code not in codes] + [""] * EXTRA_LANGUAGES
    rows = [
        {
            "language": code,
            "title": translations.get(code, {}).get("title", ""),
            "body": translations.get(code, {}).get("body", ""),
            "questions": "\n".join(translations.get(code, {}).get("questions", [])),
        }
        for code in codes
    ]
    return {"id": (article or {}).get("id", ""), "tags": ", ".join((article or {}).get("tags", [])), "rows": rows}


def _posted_article(fields: dict[str, str], article_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the API body, the form as typed) of a posted article form."""
    rows = []
    translations: dict[str, Any] = {}
    for index in range(min(int(fields.get("rows", "0") or 0), 50)):
        row = {key: fields.get(f"{key}_{index}", "").strip() for key in ("language", "title", "body", "questions")}
        rows.append(row)
        if row["title"] or row["body"] or row["questions"]:  # a language code alone is an empty row
            translations[row["language"]] = {
                "title": row["title"],
                "body": row["body"],
                "questions": _lines(row["questions"]),
            }
    tags = [t.strip() for t in fields.get("tags", "").split(",") if t.strip()]
    typed = {"id": article_id, "tags": fields.get("tags", ""), "rows": rows}
    return {"id": article_id, "tags": tags, "translations": translations}, typed


def _errors(answer: Answer) -> dict[str, str]:
    return answer.field_errors() or {"$": answer.message or f"refused ({answer.status})"}


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/assistant")
    async def overview(request: Request, staff: StaffDep, status: str = "", days: int = 30, q: str = "") -> Response:
        days = min(max(days, 1), 366)
        params: dict[str, Any] = {"days": days, "limit": 50} | ({"status": status} if status in STATUSES[1:] else {})
        figures, unanswered, listed = await asyncio.gather(
            staff.api.get("/v1/assistant/figures", days=days),
            staff.api.get("/v1/assistant/unanswered", days=days, limit=20),
            staff.api.get("/v1/conversations", **params),
        )
        tried = await staff.api.get("/v1/knowledge-base/try", text=q[:1000]) if q.strip() else None
        context = {
            "figures": figures.body if figures.ok else None,
            "unanswered": unanswered.body if unanswered.ok else [],
            "conversations": listed.body if listed.ok else [],
            "filters": {"status": status, "days": days},
            "statuses": STATUSES,
            "q": q,
            "tried": tried.body if tried is not None and tried.ok else None,
            "public_url": str(request.base_url).rstrip("/"),
        }
        return render(request, "assistant/overview.html", context, staff=staff)

    async def conversation_page(
        request: Request, staff: Staff, conversation_id: str, errors: dict[str, str], typed: str = "", status: int = 200
    ) -> Response:
        context = await conversation_context(staff, conversation_id)
        if context is None:
            return render(
                request,
                "error.html",
                {"heading": "Conversation not found", "message": "No conversation has this id."},
                staff=staff,
                status=404,
            )
        context |= {
            "errors": errors,
            "typed": typed,
            "reply_action": f"/console/assistant/conversations/{conversation_id}/replies",
        }
        return render(request, "assistant/conversation.html", context, staff=staff, status=status)

    @routes.get("/console/assistant/conversations/{conversation_id}")
    async def show_conversation(request: Request, staff: StaffDep, conversation_id: str) -> Response:
        return await conversation_page(request, staff, conversation_id, {})

    @routes.post("/console/assistant/conversations/{conversation_id}/replies")
    async def reply(request: Request, staff: StaffDep, conversation_id: str) -> Response:
        fields, api = await staff.posted(request)
        text = fields.get("text", "").strip()
        answer = await api.call("POST", f"/v1/conversations/{conversation_id}/replies", json={"text": text})
        back = fields.get("back", "")
        if answer.ok:
            target = (
                back if back.startswith("/console/cases/") else f"/console/assistant/conversations/{conversation_id}"
            )
            return RedirectResponse(f"{target}#chat", status_code=303)
        return await conversation_page(request, staff, conversation_id, _errors(answer), text, answer.status)

    @routes.get("/console/assistant/articles")
    async def articles(request: Request, staff: StaffDep, notice: str = "") -> Response:
        listed, figures = await asyncio.gather(
            staff.api.get("/v1/knowledge-base/articles"), staff.api.get("/v1/assistant/figures", days=30)
        )
        languages = (figures.body or {}).get("assistant", {}).get("languages", []) if figures.ok else []
        context = {
            "articles": listed.body if listed.ok else [],
            "languages": languages,
            "notice": notice,
            "errors": {},
            "typed": "",
        }
        return render(request, "assistant/articles.html", context, staff=staff)

    async def article_page(
        request: Request, staff: Staff, form: dict[str, Any], new: bool, errors: dict[str, str], status: int = 200
    ) -> Response:
        context = {"form": form, "new": new, "errors": errors}
        return render(request, "assistant/article.html", context, staff=staff, status=status)

    async def languages_of(staff: Staff) -> list[str]:
        figures = await staff.api.get("/v1/assistant/figures", days=1)
        return list((figures.body or {}).get("assistant", {}).get("languages", [])) if figures.ok else ["en"]

    @routes.get("/console/assistant/articles/new")
    async def new_article(request: Request, staff: StaffDep) -> Response:
        return await article_page(request, staff, _article_form(None, await languages_of(staff)), True, {})

    @routes.get("/console/assistant/articles/{article_id}")
    async def show_article(request: Request, staff: StaffDep, article_id: str) -> Response:
        found = await staff.api.get(f"/v1/knowledge-base/articles/{article_id}")
        if not found.ok:
            return render(
                request,
                "error.html",
                {"heading": "Article not found", "message": "No article has this id."},
                staff=staff,
                status=found.status,
            )
        return await article_page(request, staff, _article_form(found.body, await languages_of(staff)), False, {})

    @routes.post("/console/assistant/articles/{article_id}")
    async def save_article(request: Request, staff: StaffDep, article_id: str) -> Response:
        """The article form (``article_id`` ``new``: the id typed in the form)."""
        fields, api = await staff.posted(request)
        chosen = fields.get("id", "").strip() if article_id == "new" else article_id
        body, typed = _posted_article(fields, chosen)
        if not chosen:
            return await article_page(request, staff, typed, True, {"id": "an article needs an id (a slug)"}, 422)
        answer = await api.call("PUT", f"/v1/knowledge-base/articles/{chosen}", json=body)
        if answer.ok:
            return RedirectResponse(f"/console/assistant/articles?notice=saved-{chosen}", status_code=303)
        return await article_page(request, staff, typed, article_id == "new", _errors(answer), answer.status)

    @routes.post("/console/assistant/articles/{article_id}/delete")
    async def delete_article(request: Request, staff: StaffDep, article_id: str) -> Response:
        _fields, api = await staff.posted(request)
        answer = await api.call("DELETE", f"/v1/knowledge-base/articles/{article_id}")
        notice = f"deleted-{article_id}" if answer.ok else f"not-deleted-{article_id}"
        return RedirectResponse(f"/console/assistant/articles?notice={notice}", status_code=303)

    @routes.post("/console/assistant/import")
    async def import_articles(request: Request, staff: StaffDep) -> Response:
        form = await request.form()
        upload = form.get("file")
        text = str(form.get("yaml") or "")
        if upload is not None and hasattr(upload, "read"):
            text = (await upload.read()).decode("utf-8", errors="replace") or text
        _fields, api = await staff.posted(request)
        answer = await api.call(
            "POST", "/v1/knowledge-base/import", content=text.encode(), content_type="application/yaml"
        )
        if answer.ok:
            notice = f"imported-{answer.body['created']}-{answer.body['updated']}"
            return RedirectResponse(f"/console/assistant/articles?notice={notice}", status_code=303)
        listed = await staff.api.get("/v1/knowledge-base/articles")
        context = {
            "articles": listed.body if listed.ok else [],
            "languages": [],
            "notice": "",
            "errors": _errors(answer),
            "typed": text,
        }
        return render(request, "assistant/articles.html", context, staff=staff, status=answer.status)

    return routes
