"""The REST API as the console calls it: in-process (httpx over ASGI, no socket), with the
signed-in person's session cookie and, for changes, their CSRF token."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
from fastapi import Request

from ecrm_interaction.api.sessions import CSRF_HEADER, SESSION_COOKIE


@dataclass(frozen=True, slots=True)
class Answer:
    """An API answer: its status, its JSON (None for an empty or non-JSON body) and its text."""

    status: int
    body: Any
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def message(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("message", "")) if isinstance(error, dict) else self.text[:300]

    def field_errors(self) -> dict[str, str]:
        """Each refused field (its dotted path without the ``body.`` prefix) and why, for inline messages."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        named: dict[str, str] = {}
        for item in (error or {}).get("errors", []) if isinstance(error, dict) else []:
            path = str(item.get("field", "$")).removeprefix("body.")
            named.setdefault(path, f"{item.get('message', '')} ({item.get('rule', '')})")
        return named


def _client(request: Request) -> httpx.AsyncClient:
    app = request.app
    client: httpx.AsyncClient | None = getattr(app.state, "console_api_client", None)
    if client is None:
        # One client for everyone: it must never keep a cookie (each call carries its caller's).
        keeps_nothing = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://interaction.internal", cookies=keeps_nothing
        )
        app.state.console_api_client = client
    return client


class ConsoleApi:
    """The API on behalf of the person whose request this is."""

    def __init__(self, request: Request, csrf: str | None = None) -> None:
        self._client = _client(request)
        self._headers: dict[str, str] = {}
        if (cookie := request.cookies.get(SESSION_COOKIE)) is not None:
            self._headers["cookie"] = f"{SESSION_COOKIE}={cookie}"
        if csrf:
            self._headers[CSRF_HEADER] = csrf

    async def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
        content: bytes | str | None = None, content_type: str | None = None,
    ) -> Answer:  # fmt: skip
        headers = dict(self._headers)
        if content_type:
            headers["content-type"] = content_type
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        answer = await self._client.request(method, path, json=json, params=clean, content=content, headers=headers)
        body: Any = None
        if answer.content and answer.headers.get("content-type", "").startswith("application/json"):
            body = answer.json()
        return Answer(answer.status_code, body, answer.text, dict(answer.headers))

    async def get(self, path: str, **params: Any) -> Answer:
        return await self.call("GET", path, params=params)
