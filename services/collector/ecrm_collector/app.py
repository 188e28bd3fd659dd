"""The collector's HTTP shell: write key in, events validated and on Kafka, JSON out.

Every answer other than 2xx is JSON: ``{"error": {"code", "message", "errors": [...]}}``
with, for invalid events, the field and rule that failed. A 2xx is sent only after Kafka
acknowledged every accepted event of the request.

The routes, by caller:

- ``routes.segment``: SDKs and back ends (Segment HTTP Tracking API);
- ``routes.surveys``: questionnaires (JSON or HTML forms);
- ``routes.email``: the open pixel, the click redirect and the ESPs' webhooks;
- ``routes.tracker``: the browser tracker script;
- ``routes.operations``: probes and metrics;
- ``routes.admin``: the interaction service's admin calls (replaying chosen dead letters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecrm_collector import metrics
from ecrm_collector.gateway import ApiError, Gateway
from ecrm_collector.openapi import with_request_schemas
from ecrm_collector.plain_routes import PlainRoutes
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.routes import admin, email, imports, operations, segment, surveys, tracker
from ecrm_collector.settings import CollectorSettings
from ecrm_schemas.suppressions import SuppressionFollower
from ecrm_schemas.validation import FieldError

VERSION = "0.1.0"
log = structlog.get_logger()


def create_app(
    settings: CollectorSettings,
    producer: AsyncProducer,
    *,
    close_producer_at_shutdown: bool = False,
    suppressions: SuppressionFollower | None = None,
) -> FastAPI:
    """Build the collector's ASGI app around an already connected producer (closed at the
    app's shutdown if ``close_producer_at_shutdown``; otherwise the caller's to close).

    ``suppressions``, a started follower of the suppression topic: events of erased identities
    are dropped, and the collector is unready until the list is read. None: nothing is dropped.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if suppressions is not None:
            suppressions.stop()
        if close_producer_at_shutdown:
            left = await asyncio.to_thread(producer.close)
            if left:
                log.warning("records_left_unflushed", records=left)

    app = FastAPI(
        lifespan=lifespan,
        title="eCRM collector",
        version=VERSION,
        description="Segment-compatible ingest API for web, email, surveys and back-end events. "
        "Authenticate with the write key as the HTTP Basic username, a Bearer token, or a `writeKey` "
        "field in the JSON body (as analytics.js does).",
    )
    gateway = Gateway.build(settings, producer, suppressions.suppressions if suppressions else None)
    ingest = segment.router(gateway)
    app.add_middleware(PlainRoutes, routers=[ingest])  # the innermost: see plain_routes
    # Preflights carry no write key, so they are answered for any origin; the real request
    # is then checked against its source's allowed origins.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        expose_headers=["Retry-After"],
        max_age=600,
    )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, field, message = {
            # The path is not echoed: a guessed path may carry an id.
            404: ("not_found", "path", "there is no route at this path"),
            405: ("method_not_allowed", "method", f"{request.method} is not allowed on this route"),
        }.get(exc.status_code, ("http_error", "$", str(exc.detail)))
        return ApiError(exc.status_code, code, message, headers=dict(exc.headers or {}), field=field).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(".".join(str(p) for p in e.get("loc", ())), e.get("type", ""), e.get("msg", "")).as_dict()
            for e in exc.errors()
        ]
        return ApiError(400, "invalid_request", "the request is invalid", errors).response()

    app.add_middleware(CountRequests)
    app.include_router(ingest)
    app.include_router(imports.router(gateway))
    app.include_router(surveys.router(gateway))
    app.include_router(email.router(gateway))
    app.include_router(tracker.router())
    app.include_router(operations.router(gateway, suppressions.caught_up if suppressions else None))
    app.include_router(admin.router(settings, gateway))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_request_schemas(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class CountRequests:
    """ASGI middleware counting answers by route template and status (cheaper than an ``@app.middleware``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, int], Any] = {}
        """(route, status) → its child of the counter: ``labels()`` costs more than the increment."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            key = (getattr(scope.get("route"), "path", "unmatched"), status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = metrics.REQUESTS.labels(key[0], str(status))
            counter.inc()


__all__ = ["ApiError", "create_app"]
