"""The API's error answers: every answer other than 2xx is JSON
``{"error": {"code", "message", "errors": [{"field", "rule", "message"}]}}``, naming the field and
the rule that refused the request."""

from __future__ import annotations

import re

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

_CODE = re.compile(r"[a-z_]+")
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def error_response(status: int, code: str, message: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "errors": errors or []}}, status_code=status)


def invalid(exc: ValidationError | ValueError) -> HTTPException:
    """422 naming each failed field (dotted path) and rule of a model that did not validate."""
    if isinstance(exc, ValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "$", "rule": e["type"], "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
    else:
        errors = [{"field": "$", "rule": "invalid", "message": str(exc)[:2000]}]
    return HTTPException(422, {"code": "invalid_request", "message": str(exc)[:2000], "errors": errors})


def _named_error(request: Request, status: int, code: str, message: str) -> dict[str, str]:
    """The field and rule of an error answer that names no fields of its own: the credentials
    for 401/403, the path's last parameter (the id not found, the link refused) for 400/404/409,
    the path or method of an unknown route, else ``$`` (the request as a whole)."""
    field, rule = "$", code
    presented = request.headers.get("authorization", "")
    if status == 401:
        field, rule = "Authorization", "unknown_token" if presented.lower().startswith("bearer ") else "missing"
        message = "send a valid API token as `Authorization: Bearer TOKEN`" if rule == "missing" else message
    elif status == 403:
        field, rule, message = "Authorization", "role", "this token's role may not do this"
    elif status == 405:
        field = "method"
    elif status in (400, 404, 409) and request.path_params:
        field = list(request.path_params)[-1]
    elif status == 404:
        field = "path"
    elif status == 422 and not _CODE.fullmatch(message):
        rule = "invalid"
    return {"field": field, "rule": rule, "message": message}


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """An ``HTTPException`` (FastAPI's own too: a body that is not UTF-8) as an error answer."""
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.detail, dict):  # raised with its own fields (``invalid``)
        response = error_response(exc.status_code, exc.detail["code"], exc.detail["message"], exc.detail["errors"])
    else:
        detail = str(exc.detail)
        code = detail if _CODE.fullmatch(detail) else _HTTP_CODES.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, detail, [_named_error(request, exc.status_code, code, detail)])
    response.headers.update(exc.headers or {})
    return response


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A request that does not validate: 422 naming each field (dotted, without ``body``/``query``) and rule."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(p) for p in e["loc"][1:]) or "$", "rule": e["type"], "message": e["msg"]}
        for e in exc.errors()
    ]
    return error_response(422, "invalid_request", "the request does not validate", errors)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
