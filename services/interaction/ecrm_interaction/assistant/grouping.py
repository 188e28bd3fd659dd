"""Unanswered questions gathered by similarity, so the shop sees what to write next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecrm_interaction.assistant.embeddings import Vectors

SIMILAR = 0.88
"""The cosine similarity at which two questions are taken to ask the same (e5's scale is narrow)."""


@dataclass(frozen=True, slots=True)
class QuestionGroup:
    example: str
    """The question closest to the group's others."""
    questions: tuple[str, ...]


def group_questions(questions: Sequence[str], vectors: Vectors | None, similar: float = SIMILAR) -> list[QuestionGroup]:
    """Greedy grouping: each question joins the first group whose first question it is similar
    to, else starts one; without vectors, identical questions (case and spaces aside) group.
    The largest groups first."""
    groups: list[list[int]] = []
    if vectors is None:
        by_text: dict[str, list[int]] = {}
        for index, question in enumerate(questions):
            by_text.setdefault(" ".join(question.lower().split()), []).append(index)
        groups = list(by_text.values())
    else:
        for index in range(len(questions)):
            for group in groups:
                if float(vectors[group[0]] @ vectors[index]) >= similar:
                    group.append(index)
                    break
            else:
                groups.append([index])
    result = []
    for group in groups:
        if vectors is not None and len(group) > 2:
            members = vectors[group]
            centre = int(np.argmax((members @ members.T).sum(axis=1)))
        else:
            centre = 0
        result.append(QuestionGroup(questions[group[centre]], tuple(questions[i] for i in group)))
    return sorted(result, key=lambda g: (-len(g.questions), g.example))
