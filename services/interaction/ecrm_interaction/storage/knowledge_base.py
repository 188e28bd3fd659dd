"""The knowledge base's articles, one row per translation. Functions take the caller's session
and never commit; every change is audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ecrm_interaction.assistant.knowledge import Article, ArticleIn, Translation
from ecrm_interaction.storage import audit
from ecrm_interaction.storage.models import KnowledgeArticle


@dataclass(frozen=True, slots=True)
class StoredArticle:
    article: ArticleIn
    updated_by: str
    updated_at: datetime


def _rows(session: Session, article_id: str | None = None) -> list[KnowledgeArticle]:
    query = select(KnowledgeArticle).order_by(KnowledgeArticle.id, KnowledgeArticle.language)
    if article_id is not None:
        query = query.where(KnowledgeArticle.id == article_id)
    return list(session.scalars(query))


def _grouped(rows: Sequence[KnowledgeArticle]) -> list[StoredArticle]:
    by_id: dict[str, list[KnowledgeArticle]] = {}
    for row in rows:
        by_id.setdefault(row.id, []).append(row)
    stored = []
    for article_id, translations in by_id.items():
        translated = {
            t.language: Translation(title=t.title, body=t.body, questions=orjson.loads(t.questions))
            for t in translations
        }
        latest = max(translations, key=lambda t: t.updated_at)
        article = ArticleIn(id=article_id, tags=orjson.loads(translations[0].tags), translations=translated)
        stored.append(StoredArticle(article, latest.updated_by, latest.updated_at))
    return stored


def articles(session: Session) -> list[StoredArticle]:
    """Every article with its translations, by id."""
    return _grouped(_rows(session))


def article(session: Session, article_id: str) -> StoredArticle | None:
    found = _grouped(_rows(session, article_id))
    return found[0] if found else None


def translations(session: Session) -> list[Article]:
    """Every translation, as the matcher indexes them."""
    return [
        Article(
            row.id, row.language, row.title, row.body, tuple(orjson.loads(row.questions)), tuple(orjson.loads(row.tags))
        )
        for row in _rows(session)
    ]


def version(session: Session) -> tuple[int, datetime | None]:
    """(translations, latest change): what the matcher's index is rebuilt on when it changes."""
    count, latest = session.execute(select(func.count(), func.max(KnowledgeArticle.updated_at))).one()
    return int(count), latest


def save_article(session: Session, new: ArticleIn, actor: str, now: datetime) -> bool:
    """Create or replace an article with all its translations; whether it is new."""
    existed = session.execute(delete(KnowledgeArticle).where(KnowledgeArticle.id == new.id)).rowcount  # type: ignore[attr-defined]
    tags = orjson.dumps(new.tags).decode()
    for language, translation in new.translations.items():
        session.add(
            KnowledgeArticle(
                id=new.id,
                language=language,
                title=translation.title,
                body=translation.body,
                questions=orjson.dumps(translation.questions).decode(),
                tags=tags,
                updated_by=actor,
                updated_at=now,
            )
        )
    session.flush()
    audit.record(
        session,
        actor,
        "update" if existed else "create",
        "knowledge_article",
        new.id,
        {"languages": sorted(new.translations)},
    )
    return not existed


def import_articles(session: Session, articles_in: Sequence[ArticleIn], actor: str, now: datetime) -> dict[str, int]:
    """Save each article (replacing one of the same id); how many were created and updated."""
    created = sum(save_article(session, a, actor, now) for a in articles_in)
    return {"created": created, "updated": len(articles_in) - created}


def delete_article(session: Session, article_id: str, actor: str) -> bool:
    gone = session.execute(delete(KnowledgeArticle).where(KnowledgeArticle.id == article_id)).rowcount  # type: ignore[attr-defined]
    if gone:
        audit.record(session, actor, "delete", "knowledge_article", article_id, {})
    return bool(gone)
