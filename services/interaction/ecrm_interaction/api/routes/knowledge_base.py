"""The knowledge base the assistant answers from: articles with their translations (read by
viewers, written by marketers), a YAML import, and a question tried against it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ecrm_interaction.api.deps import Marketer, SessionDep, Viewer
from ecrm_interaction.api.errors import invalid
from ecrm_interaction.api.services.assistant import Assistant
from ecrm_interaction.assistant import language
from ecrm_interaction.assistant.knowledge import ArticleIn, parse_knowledge
from ecrm_interaction.storage import knowledge_base


class ArticleView(ArticleIn):
    updated_by: str
    updated_at: datetime


def _view(stored: knowledge_base.StoredArticle) -> ArticleView:
    return ArticleView(**stored.article.model_dump(), updated_by=stored.updated_by, updated_at=stored.updated_at)


def router(assistant: Assistant) -> APIRouter:
    routes = APIRouter(tags=["knowledge base"])

    @routes.get("/v1/knowledge-base/articles")
    def list_articles(_who: Viewer, session: SessionDep) -> list[ArticleView]:
        return [_view(a) for a in knowledge_base.articles(session)]

    @routes.get("/v1/knowledge-base/articles/{article_id}")
    def get_article(article_id: str, _who: Viewer, session: SessionDep) -> ArticleView:
        found = knowledge_base.article(session, article_id)
        if found is None:
            raise HTTPException(404, "article_not_found")
        return _view(found)

    @routes.put("/v1/knowledge-base/articles/{article_id}")
    def save_article(article_id: str, article: ArticleIn, who: Marketer, session: SessionDep) -> ArticleView:
        """Create or replace an article with all its translations (a language left out is removed)."""
        if article.id != article_id:
            raise HTTPException(
                422,
                {
                    "code": "invalid_request",
                    "message": "the body's id is not the path's",
                    "errors": [
                        {"field": "id", "rule": "matches_path", "message": f"the body's id must be {article_id!r}"}
                    ],
                },
            )
        knowledge_base.save_article(session, article, who.name, datetime.now(UTC))
        saved = knowledge_base.article(session, article_id)
        assert saved is not None
        return _view(saved)

    @routes.delete("/v1/knowledge-base/articles/{article_id}", status_code=204)
    def delete_article(article_id: str, who: Marketer, session: SessionDep) -> None:
        if not knowledge_base.delete_article(session, article_id, who.name):
            raise HTTPException(404, "article_not_found")

    @routes.post("/v1/knowledge-base/import")
    def import_articles(
        who: Marketer, session: SessionDep, body: Annotated[str, Body(media_type="application/yaml")]
    ) -> dict[str, int]:
        """Create or replace the articles of a knowledge-base YAML file (its format: the README)."""
        try:
            parsed = parse_knowledge(body)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
        except yaml.YAMLError as exc:
            raise HTTPException(422, f"not a knowledge-base file: {exc}"[:2000]) from exc
        except ValueError as exc:
            raise invalid(exc) from exc
        return knowledge_base.import_articles(session, parsed, who.name, datetime.now(UTC))

    @routes.get("/v1/knowledge-base/try")
    def try_question(
        _who: Viewer,
        session: SessionDep,
        text: Annotated[str, Query(min_length=1, max_length=1000)],
        page_language: Annotated[str | None, Query(max_length=35)] = None,
    ) -> dict[str, Any]:
        """What the assistant would answer ``text``: its best matches, their confidence, and
        whether the best clears the threshold (nothing is recorded)."""
        spoken = language.detect(
            text, language.page_language(page_language), assistant.languages, assistant.default_language
        )
        matches = assistant.match(session, text)
        best = matches[0] if matches and matches[0].confidence >= assistant.threshold else None
        return {
            "language": spoken,
            "answer": {"kind": best.kind, "key": best.key} if best else None,
            "matches": [
                {"kind": m.kind, "key": m.key, "confidence": m.confidence, "language": m.language} for m in matches
            ],
            **assistant.describe(),
        }

    return routes
