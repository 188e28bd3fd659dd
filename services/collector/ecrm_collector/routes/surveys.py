"""Questionnaires post their answers here, as JSON or straight from an HTML form."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ecrm_collector.gateway import ApiError, Gateway, error_responses, pop_body_key
from ecrm_collector.routes.segment import json_response
from ecrm_collector.surveys import form_to_response, response_events
from ecrm_schemas.validation import FieldError

FORM = "application/x-www-form-urlencoded"
THANK_YOU = "<!doctype html><title>Thank you</title><p>Thank you for your answers.</p>"
SURVEY_BODY = {
    "type": "object",
    "properties": {
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "writeKey": {"type": "string"},
        "context": {"type": "object"},
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["question_id"],
                "properties": {
                    "question_id": {"type": "string"},
                    "answer": {},
                    "score": {"type": "integer", "minimum": 0, "maximum": 10, "description": "NPS answers"},
                    "text": {"type": "string", "description": "Free text (the comment of an NPS answer)"},
                },
            },
        },
    },
    "anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}],
}
FORM_BODY = {
    "type": "object",
    "required": ["writeKey"],
    "properties": {
        "writeKey": {"type": "string"},
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
    },
    "additionalProperties": {"type": "string"},
    "description": "`q_<question>` = answer, `nps_<question>` = score 0-10, `text_<question>` = free text.",
}


def router(gateway: Gateway) -> APIRouter:
    routes = APIRouter(tags=["surveys"])
    limit = gateway.settings.collector_max_batch_bytes

    async def survey_response(survey_id: str, request: Request) -> Response:
        """Answers to a questionnaire, as JSON or straight from an HTML form (urlencoded, with a
        ``writeKey`` field). Each answer becomes a ``Survey Answered`` event; a ``score`` 0 to 10
        becomes ``NPS Answered``. All answers are stored, or none (400 naming each invalid one)."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type.startswith("multipart/"):
            raise ApiError(415, "content_type", "post the form urlencoded (the HTML default), or JSON",
                           field="Content-Type")  # fmt: skip
        is_form = content_type == FORM
        if is_form:
            raw = await gateway.read_raw(request, limit)
            fields = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=False)
            source = gateway.authenticate(request, dict(fields).get("writeKey"))
            body: Any = form_to_response(fields)
        else:
            source, body, _size = await gateway.authenticated_json(request, limit)
        if not isinstance(body, dict):
            error = FieldError("$", "dict_type", "the body must be a JSON object")
            raise ApiError(400, "invalid_response", error.message, [error.as_dict()])
        pop_body_key(body)
        plan = gateway.plan(response_events(survey_id, body), source)
        if plan.rejected:
            # Nothing of a half-valid response is stored, so the respondent can fix it and resend;
            # the invalid answers are still dead-lettered for the record.
            plan.accepted.clear()
            await gateway.deliver(plan)
            errors = [e.as_dict() | {"index": r.index} for r in plan.rejected for e in r.errors]
            raise ApiError(400, "invalid_answers", "some answers are invalid; nothing was stored", errors)
        await gateway.deliver(plan)
        if is_form:
            return HTMLResponse(THANK_YOU)
        return json_response({"success": True, "accepted": len(plan.accepted)})

    routes.add_api_route(
        "/v1/surveys/{survey_id}/responses",
        survey_response,
        methods=["POST"],
        responses=error_responses(400, 401, 403, 413, 415, 429, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": SURVEY_BODY}, FORM: {"schema": FORM_BODY}},
            }
        },
    )
    return routes
