"""One index over the articles and the own-data intents; a question's best matches.

Every article translation is indexed by its title and its questions (embedded as queries: a
question is compared with questions) and by its title with its body (as a passage); every
intent by its example phrasings. A question's score for an article is its best cosine
similarity with any of these, in any language (the model is multilingual).

Lexical matching stays for what embeddings blur: a code-like token (``SKU-4411``,
``GC2024``) that one article alone contains wins that article outright. Without the model
(:func:`ecrm_interaction.assistant.embeddings.load_embedder` gave None), BM25 ranks alone and
its score is mapped to a confidence by :func:`lexical_confidence`. An article's score is the mean
of its best two passages (:data:`AGREEING`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import bm25s
import numpy as np

from ecrm_interaction.assistant.embeddings import Embedder, Vectors
from ecrm_interaction.assistant.knowledge import Article

Kind = Literal["article", "intent"]
CODE_TOKEN = re.compile(r"\b(?=[A-Za-z0-9_-]*[A-Za-z])(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9][A-Za-z0-9_-]{3,}\b")
"""A token with letters and digits (a SKU, a gift-card or discount code), at least 4 long."""
_WORD = r"(?u)\b\w\w+\b"
LONG_NUMBER = re.compile(r"#?\b[A-Za-z]{0,4}-?\d{4,}\b")
AGREEING = 2
"""An article's (or intent's) score is the mean of its best this many passages: one passage
close by chance counts less than two that agree (on the knowledge base's own questions, each
matched without itself, top-1 went from 0.74 with the best passage alone to 0.79)."""
LEXICAL_SCALE = 6.0
"""The BM25 score at which a lexical match is 63 % confident (1 − 1/e)."""


@dataclass(frozen=True, slots=True)
class Match:
    kind: Kind
    key: str
    """The article id, or the intent's name."""
    confidence: float
    language: str
    """The language of the passage that matched best."""


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: Kind
    key: str
    language: str


def lexical_confidence(score: float) -> float:
    return 1.0 - math.exp(-max(score, 0.0) / LEXICAL_SCALE)


def code_tokens(text: str) -> set[str]:
    return {token.lower() for token in CODE_TOKEN.findall(text)}


class KnowledgeIndex:
    """Build once per change of the knowledge base (:meth:`build`); :meth:`match` is read-only
    and safe from many threads (the embedder serialises its own calls)."""

    def __init__(
        self,
        entries: list[_Entry],
        texts: list[str],
        vectors: Vectors | None,
        lexical: bm25s.BM25 | None,
        codes: dict[str, set[str]],
        embedder: Embedder | None,
    ) -> None:
        self._entries, self._vectors, self._lexical = entries, vectors, lexical
        self._codes, self._embedder = codes, embedder
        self._texts = texts

    @property
    def semantic(self) -> bool:
        return self._embedder is not None

    @property
    def size(self) -> int:
        return len(self._entries)

    @classmethod
    def build(
        cls,
        articles: Sequence[Article],
        intents: Mapping[str, Mapping[str, Sequence[str]]],
        embedder: Embedder | None,
        cached: dict[tuple[bool, str], np.ndarray] | None = None,
    ) -> KnowledgeIndex:
        """``intents``: name → language → example phrasings. ``cached``: vectors already
        computed, by (is a query, text), reused and filled (an edit re-embeds only its texts)."""
        texts: list[tuple[bool, str]] = []
        entries: list[_Entry] = []
        lexical_texts: list[str] = []
        codes: dict[str, set[str]] = {}
        for article in articles:
            for query_text in (article.title, *article.questions):
                texts.append((True, query_text))
                entries.append(_Entry("article", article.id, article.language))
                lexical_texts.append(query_text)
            texts.append((False, f"{article.title}\n{article.body}"))
            entries.append(_Entry("article", article.id, article.language))
            lexical_texts.append(f"{article.title} {article.body}")
            for token in code_tokens(f"{article.title} {article.body}"):
                codes.setdefault(token, set()).add(article.id)
        for name, by_language in sorted(intents.items()):
            for language, phrasings in sorted(by_language.items()):
                for phrasing in phrasings:
                    texts.append((True, phrasing))
                    entries.append(_Entry("intent", name, language))
                    lexical_texts.append(phrasing)
        vectors = None
        if embedder is not None and texts:
            vectors = _embed_all(embedder, texts, cached if cached is not None else {})
        lexical = None
        if lexical_texts:
            lexical = bm25s.BM25()
            lexical.index(_tokens(lexical_texts), show_progress=False)
        return cls(entries, [text for _, text in texts], vectors, lexical, codes, embedder)

    def match(self, question: str, limit: int = 3, excluded: str | None = None) -> list[Match]:
        """The best ``limit`` articles and intents for ``question``, the most confident first;
        ``excluded``: a passage's text left out (to match a knowledge-base question without itself)."""
        if not self._entries or not question.strip():
            return []
        scores = self._scores(question)
        if excluded is not None:  # calibration: a question is not matched against itself
            scores = np.where(np.array(self._texts) == excluded, -1.0, scores)
        found: dict[tuple[Kind, str], list[tuple[float, str]]] = {}
        for entry, score in zip(self._entries, scores, strict=True):
            found.setdefault((entry.kind, entry.key), []).append((float(score), entry.language))
        best: dict[tuple[Kind, str], tuple[float, str]] = {}
        for key, passages in found.items():
            top = sorted(passages, reverse=True)[:AGREEING]
            best[key] = (sum(score for score, _ in top) / len(top), top[0][1])
        for token in code_tokens(question):
            owners = self._codes.get(token, set())
            if len(owners) == 1:
                (owner,) = owners
                score, language = best[("article", owner)]
                best[("article", owner)] = (max(score, 1.0), language)
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:limit]
        return [Match(kind, key, round(score, 4), language) for (kind, key), (score, language) in ranked]

    def _scores(self, question: str) -> np.ndarray:
        if self._embedder is not None and self._vectors is not None:
            # A long number (an order's) means nothing to the model and pulls the match away.
            query = self._embedder.queries([LONG_NUMBER.sub(" ", question)])[0]
            return self._vectors @ query
        assert self._lexical is not None
        tokens = _tokens([question])[0]
        raw = self._lexical.get_scores(tokens) if tokens else np.zeros(len(self._entries))
        return np.array([lexical_confidence(s) for s in raw])


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    return [re.findall(_WORD, text.lower()) for text in texts]


def _embed_all(
    embedder: Embedder, texts: list[tuple[bool, str]], cached: dict[tuple[bool, str], np.ndarray]
) -> Vectors:
    missing_queries = sorted({text for is_query, text in texts if is_query and (True, text) not in cached})
    missing_passages = sorted({text for is_query, text in texts if not is_query and (False, text) not in cached})
    for is_query, batch, embed in (
        (True, missing_queries, embedder.queries),
        (False, missing_passages, embedder.passages),
    ):
        for start in range(0, len(batch), 64):
            chunk = batch[start : start + 64]
            for text, vector in zip(chunk, embed(chunk), strict=True):
                cached[(is_query, text)] = vector
    return np.stack([cached[key] for key in texts]).astype(np.float32)
