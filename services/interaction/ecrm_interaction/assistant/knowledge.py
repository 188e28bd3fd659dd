"""The knowledge base: the shop's curated articles, one translation per language.

The assistant answers only with these: it shows the article it matched, never words of its own.
An article has an id (a slug), tags, and per language a title, a body and the questions
customers ask that it answers (they teach the matcher the customers' words). The YAML file
form (``ecrm-interaction knowledge import FILE``, the console's import, ``POST
/v1/knowledge-base/import``) is::

    articles:
      - id: returns-policy
        tags: [returns]
        translations:
          en: {title: How do I return an item?, body: ..., questions: [Can I send something back?]}
          de: {title: ..., body: ..., questions: [...]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

LANGUAGE = r"^[a-z]{2}$"
ARTICLE_ID = r"^[a-z0-9][a-z0-9-]{0,99}$"
Language = Annotated[str, StringConstraints(pattern=LANGUAGE)]
"""Two lowercase letters (ISO 639-1)."""


class Translation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20_000)
    questions: list[str] = Field(default_factory=list, max_length=50)


class ArticleIn(BaseModel):
    """An article with its translations, as the API and the YAML file give it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ARTICLE_ID, description="A slug: lowercase letters, digits and dashes.")
    tags: list[str] = Field(default_factory=list, max_length=20)
    translations: dict[Language, Translation] = Field(min_length=1, description="By language (ISO 639-1: en, de, …).")


class KnowledgeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    articles: list[ArticleIn] = Field(max_length=5000)


def parse_knowledge(text: str) -> list[ArticleIn]:
    """Parse and validate a knowledge-base YAML file; raises ``pydantic.ValidationError`` or
    ``yaml.YAMLError`` (a duplicate id is a ``ValueError``)."""
    articles = KnowledgeFile.model_validate(yaml.safe_load(text) or {"articles": []}).articles
    seen: set[str] = set()
    for article in articles:
        if article.id in seen:
            raise ValueError(f"the article id {article.id!r} is used twice")
        seen.add(article.id)
    return articles


@dataclass(frozen=True, slots=True)
class Article:
    """One translation of an article: what the matcher indexes and the widget shows."""

    id: str
    language: str
    title: str
    body: str
    questions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


def translations_of(article: ArticleIn) -> list[Article]:
    return [
        Article(article.id, language, t.title, t.body, tuple(t.questions), tuple(article.tags))
        for language, t in sorted(article.translations.items())
    ]


def in_language(translations: list[Article], language: str, fallback: str) -> Article:
    """The translation to show: the visitor's language, else the shop's default, else any."""
    by_language = {a.language: a for a in translations}
    return by_language.get(language) or by_language.get(fallback) or translations[0]
