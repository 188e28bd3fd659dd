"""Survey responses (active collection) as events (pure).

A response is one or more answers from one respondent. Each answer becomes a
``Survey Answered`` event; an NPS answer (a ``score``) becomes ``NPS Answered``. The events
then pass the same validation as any other, so a score of 11 is refused with its field.

JSON body::

    {"userId": "u1", "answers": [
        {"question_id": "fit", "answer": "true to size"},
        {"question_id": "nps", "score": 9, "comment": "fast delivery"}]}

HTML form fields (so a questionnaire page can post to the endpoint directly):
``writeKey``, ``userId`` / ``anonymousId``, ``q_<question>`` = answer,
``nps_<question>`` = score, ``text_<question>`` = free text or NPS comment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ecrm_schemas.catalog import CatalogEvent

IDENTITY_FIELDS = ("userId", "anonymousId")
ANSWER_PREFIX, SCORE_PREFIX, TEXT_PREFIX = "q_", "nps_", "text_"
FORM_FIELDS: dict[str, str] = {
    "writeKey": "the source's write key (a browser key may send surveys)",
    "userId / anonymousId": "who answers (one of them is required)",
    f"{ANSWER_PREFIX}<question>": "the answer to `<question>`: a `Survey Answered` event",
    f"{SCORE_PREFIX}<question>": "a score from 0 to 10: an `NPS Answered` event",
    f"{TEXT_PREFIX}<question>": "free text for `<question>`, or the comment of its NPS score",
}
"""The fields of an HTML survey form (the catalog document is generated from this)."""


def response_events(survey_id: str, body: dict[str, Any]) -> list[Any]:
    """Raw track events for a JSON survey response (an invalid answer stays in to be rejected)."""
    identity = {k: body[k] for k in IDENTITY_FIELDS if k in body}
    context = {"context": body["context"]} if isinstance(body.get("context"), dict) else {}
    answers = body.get("answers")
    if not isinstance(answers, list) or not answers:
        return [
            {"type": "track", "event": CatalogEvent.SURVEY_ANSWERED, **identity, "properties": {"survey_id": survey_id}}
        ]
    events: list[Any] = []
    for answer in answers:
        if not isinstance(answer, dict):
            events.append(answer)  # validation names it
            continue
        events.append(_answer_event(survey_id, identity | context, answer))
    return events


def _answer_event(survey_id: str, envelope: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    properties = {"survey_id": survey_id, **answer}
    if "score" in answer:
        if "comment" not in properties and "text" in properties:
            properties["comment"] = properties.pop("text")
        return {"type": "track", "event": CatalogEvent.NPS_ANSWERED, **envelope, "properties": properties}
    return {"type": "track", "event": CatalogEvent.SURVEY_ANSWERED, **envelope, "properties": properties}


def form_to_response(fields: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """An HTML form's fields as a JSON survey response (see the module docstring)."""
    body: dict[str, Any] = {}
    answers: dict[str, dict[str, Any]] = {}
    for name, value in fields:
        if name in IDENTITY_FIELDS:
            body[name] = value
        elif name.startswith(ANSWER_PREFIX):
            answers.setdefault(name.removeprefix(ANSWER_PREFIX), {})["answer"] = value
        elif name.startswith(SCORE_PREFIX):
            answers.setdefault(name.removeprefix(SCORE_PREFIX), {})["score"] = _number(value)
        elif name.startswith(TEXT_PREFIX):
            answers.setdefault(name.removeprefix(TEXT_PREFIX), {})["text"] = value
    body["answers"] = [{"question_id": q, **a} for q, a in answers.items()]
    return body


def _number(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        return value  # validation refuses it with the field's name
