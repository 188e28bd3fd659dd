"""Which language to answer in: the page's, unless the question is clearly in another one the
shop writes in. ``lingua`` runs offline; its low-accuracy mode (trigrams, about 15 MB for four
languages, against about 150 MB for the full models) is unsure of short questions, so only a
confident guess overrides the page (``where is my order`` may look German; the page says
English)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

SURE = 0.99
"""How confident the detector must be to answer in another language than the page's (its
low-accuracy mode gives "What is the status of order" 0.92 German)."""


@lru_cache(maxsize=8)
def _detector(languages: tuple[str, ...]) -> LanguageDetector | None:
    known = [
        Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
        for code in languages
        if hasattr(IsoCode639_1, code.upper())
    ]
    if len(known) < 2:
        return None
    return LanguageDetectorBuilder.from_languages(*known).with_low_accuracy_mode().build()


def detect(
    text: str, page_language: str | None, languages: Sequence[str], default: str, matched: str | None = None
) -> str:
    """The language to answer ``text`` in, one of ``languages``: the detected one when the
    detector is sure; else ``matched``, the language of the passage the question matched
    confidently (the knowledge base's questions are written in each language); else the
    page's (when the shop writes in it); else ``default``."""
    fallback = page_language if page_language is not None and page_language in languages else default
    if matched is not None and matched in languages:
        fallback = matched
    detector = _detector(tuple(sorted(languages)))
    if detector is None or len(text.strip()) < 8:
        return fallback
    values = detector.compute_language_confidence_values(text)
    if values and values[0].value >= SURE:
        code = values[0].language.iso_code_639_1.name.lower()
        if code in languages:
            return code
    return fallback


def page_language(tag: str | None) -> str | None:
    """``de-AT`` → ``de``; None for nothing readable."""
    if not tag:
        return None
    primary = tag.strip().split("-")[0].split("_")[0].lower()
    return primary if len(primary) == 2 and primary.isalpha() else None
