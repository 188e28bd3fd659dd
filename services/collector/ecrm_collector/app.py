"""The collector's HTTP shell: write key in, events validated and on Kafka, JSON out.

Every answer other than 2xx is JSON: ``{"error": {"code", "message", "errors": [...]}}``
with, for invalid events, the field and rule that failed. A 2xx is sent only after Kafka
acknowledged every accepted event of the request.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import limits
import limits.storage
import limits.strategies
import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecrm_collector import metrics
from ecrm_collector.email_tracking import PIXEL_GIF, click_event, is_machine_open, open_event
from ecrm_collector.http_body import BodyError, read_body, read_json_body
from ecrm_collector.ingest import IngestPlan, Record, plan_ingest
from ecrm_collector.producer import AsyncProducer, DeliveryFailed
from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import Source, SourceDirectory
from ecrm_collector.surveys import form_to_response, response_events
from ecrm_schemas.events import EVENT_TYPES
from ecrm_schemas.topics import EVENTS
from ecrm_schemas.tracking import InvalidToken, TrackingToken, verify

log = structlog.get_logger()
RETRY_AFTER_S = 5


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = errors or []
        self.headers = headers or {}


def _error_response(exc: ApiError) -> JSONResponse:
    body = {"error": {"code": exc.code, "message": exc.message, "errors": exc.errors}}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except ValueError:
            return None
        return decoded.partition(":")[0] or None
    return None


def create_app(settings: CollectorSettings, producer: AsyncProducer) -> FastAPI:
    """Build the collector's ASGI app around an already connected producer."""
    app = FastAPI(
        title="eCRM collector",
        version="0.1.0",
        description="Segment-compatible ingest API. Authenticate with the write key as the HTTP Basic "
        "username or as a Bearer token.",
    )
    sources = SourceDirectory(settings.collector_sources_file, settings.write_keys())
    rate = limits.parse(settings.collector_rate_limit)
    limiter = limits.strategies.SlidingWindowCounterRateLimiter(limits.storage.MemoryStorage())
    # Preflights carry no write key, so they are answered for any origin; the real request
    # is then checked against its source's allowed origins.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        max_age=600,
    )

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})))

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    def authenticate(request: Request, presented: str | None = None) -> Source:
        presented = presented or _presented_key(request)
        if presented is None:
            raise ApiError(401, "unauthorized", "send the write key as the HTTP Basic username or a Bearer token")
        source = sources.find(presented)
        if source is None:
            raise ApiError(401, "unauthorized", "unknown or revoked write key")
        if not source.allows_origin(request.headers.get("origin")):
            raise ApiError(403, "origin_not_allowed", "this source does not accept events from this origin")
        if not limiter.hit(rate, source.key_hash):
            reset_at = limiter.get_window_stats(rate, source.key_hash).reset_time
            retry_after = max(1, math.ceil(reset_at - time.time()))
            metrics.RATE_LIMITED.inc()
            raise ApiError(429, "rate_limited", f"this source is limited to {settings.collector_rate_limit}",
                           headers={"Retry-After": str(retry_after)})  # fmt: skip
        return source

    async def body_of(request: Request, limit: int) -> Any:
        try:
            return await read_json_body(request.stream(), encoding=request.headers.get("content-encoding"), limit=limit)
        except BodyError as exc:
            raise ApiError(exc.status, exc.rule, exc.message) from None

    async def deliver(plan: IngestPlan) -> None:
        """Produce the plan's records and wait for every acknowledgment, or raise 503."""
        started = time.perf_counter()
        futures = [producer.produce(EVENTS.name, r.key, r.value) for r in plan.accepted]
        futures += [producer.produce(_dlq(), r.dead_letter.key, r.dead_letter.value) for r in plan.rejected]
        metrics.PRODUCER_QUEUE.set(producer.queue_length())
        try:
            await asyncio.wait_for(asyncio.gather(*futures), settings.collector_produce_timeout_s)
        except (DeliveryFailed, TimeoutError) as exc:
            for future in futures:
                future.cancel()
            log.warning("produce_failed", error=str(exc) or "timeout", records=len(futures))
            raise ApiError(
                503,
                "broker_unavailable",
                "events could not be stored; retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_ACCEPTED.inc(len(plan.accepted))
        for rejection in plan.rejected:
            for error in rejection.errors:
                metrics.EVENTS_REJECTED.labels(error.rule).inc()

    def single_route(event_type: str) -> Any:
        async def ingest_one(request: Request) -> JSONResponse:
            source = authenticate(request)
            raw = await body_of(request, settings.collector_max_event_bytes)
            plan = plan_ingest(
                [raw],
                received_at=datetime.now(UTC),
                source=f"collector:{source.name}",
                server_events_allowed=source.kind == "server",
                max_event_bytes=settings.collector_max_event_bytes,
                event_type=event_type,
            )
            await deliver(plan)
            if plan.rejected:
                errors = [e.as_dict() for e in plan.rejected[0].errors]
                raise ApiError(400, "invalid_event", "the event is invalid", errors)
            return JSONResponse({"success": True})

        ingest_one.__name__ = f"ingest_{event_type}"
        ingest_one.__doc__ = f"Accept one `{event_type}` event (Segment spec) and put it on Kafka."
        return ingest_one

    for event_type in EVENT_TYPES:
        app.add_api_route(f"/v1/{event_type}", single_route(event_type), methods=["POST"], tags=["ingest"])

    @app.post("/v1/batch", tags=["ingest"])
    async def ingest_batch(request: Request) -> JSONResponse:
        """Accept many events at once. Valid events are stored; invalid ones are listed by index
        and go to the dead-letter topic with their reason."""
        source = authenticate(request)
        body = await body_of(request, settings.collector_max_batch_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            raise ApiError(
                400,
                "invalid_batch",
                "the body must be an object with a `batch` array",
                [{"field": "batch", "rule": "list_type", "message": "Input should be a valid list"}],
            )
        defaults = {k: body[k] for k in ("context", "integrations", "sentAt") if k in body}
        plan = plan_ingest(
            body["batch"],
            received_at=datetime.now(UTC),
            source=f"collector:{source.name}",
            server_events_allowed=source.kind == "server",
            max_event_bytes=settings.collector_max_event_bytes,
            batch_defaults=defaults,
        )
        await deliver(plan)
        rejected = [{"index": r.index, "errors": [e.as_dict() for e in r.errors]} for r in plan.rejected]
        return JSONResponse({"success": True, "accepted": len(plan.accepted), "rejected": rejected})

    @app.post("/v1/surveys/{survey_id}/responses", tags=["surveys"])
    async def survey_response(survey_id: str, request: Request) -> Response:
        """Answers to a questionnaire, as JSON or straight from an HTML form (urlencoded, with a
        ``writeKey`` field). Each answer becomes a ``Survey Answered`` event; a ``score`` 0 to 10
        becomes ``NPS Answered``."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        is_form = content_type == "application/x-www-form-urlencoded"
        if content_type.startswith("multipart/"):
            raise ApiError(415, "content_type", "post the form urlencoded (the HTML default), or JSON")
        if is_form:
            try:
                raw = await read_body(request.stream(), encoding=request.headers.get("content-encoding"),
                                      limit=settings.collector_max_batch_bytes)  # fmt: skip
            except BodyError as exc:
                raise ApiError(exc.status, exc.rule, exc.message) from None
            fields = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=False)
            source = authenticate(request, dict(fields).get("writeKey"))
            body: Any = form_to_response(fields)
        else:
            source = authenticate(request)
            body = await body_of(request, settings.collector_max_batch_bytes)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_response", "the body must be a JSON object", [
                {"field": "$", "rule": "dict_type", "message": "Input should be an object"}])  # fmt: skip
        plan = plan_ingest(
            response_events(survey_id, body),
            received_at=datetime.now(UTC),
            source=f"collector:{source.name}",
            max_event_bytes=settings.collector_max_event_bytes,
            server_events_allowed=source.kind == "server",
        )
        await deliver(plan)
        if plan.rejected:
            errors = [e.as_dict() | {"index": r.index} for r in plan.rejected for e in r.errors]
            raise ApiError(400, "invalid_answers", "some answers are invalid and were not stored", errors)
        if is_form:
            return HTMLResponse("<!doctype html><title>Thank you</title><p>Thank you for your answers.</p>")
        return JSONResponse({"success": True, "accepted": len(plan.accepted)})

    async def tracked(raw_event: dict[str, Any]) -> None:
        plan = plan_ingest([raw_event], received_at=datetime.now(UTC), source="collector:email-tracking",
                           max_event_bytes=settings.collector_max_event_bytes)  # fmt: skip
        await deliver(plan)

    def token_of(value: str) -> TrackingToken:
        try:
            return verify(value, settings.tracking_secret.get_secret_value())
        except InvalidToken:
            raise ApiError(400, "invalid_token", "the tracking token is invalid or was altered") from None

    @app.get("/v1/e/o/{token}.gif", tags=["email"])
    async def email_open(token: str, request: Request) -> Response:
        """Open pixel: records ``Email Opened`` (flagging likely machine opens) and returns a 1x1 GIF."""
        claims = token_of(token)
        agent = request.headers.get("user-agent")
        machine = is_machine_open(claims, agent, time.time(), settings.collector_machine_open_s)
        await tracked(open_event(claims, machine_open=machine, user_agent=agent))
        return Response(PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store, max-age=0"})

    @app.get("/v1/e/c/{token}", tags=["email"])
    async def email_click(token: str, request: Request) -> Response:
        """Click redirect: records ``Email Link Clicked`` and redirects to the signed URL, and only there."""
        claims = token_of(token)
        if not claims.url or not claims.url.startswith(("https://", "http://")):
            raise ApiError(400, "invalid_token", "the tracking token carries no link")
        await tracked(click_event(claims, request.headers.get("user-agent")))
        return RedirectResponse(claims.url, status_code=302, headers={"Cache-Control": "no-store"})

    @app.get("/livez", tags=["operations"])
    async def livez() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Ready when the broker answers."""
        if await asyncio.to_thread(producer.broker_reachable, 2.0):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unready", "reason": "broker unreachable"}, status_code=503)

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        metrics.PRODUCER_QUEUE.set(producer.queue_length())
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _dlq() -> str:
    assert EVENTS.dead_letter is not None
    return EVENTS.dead_letter


__all__ = ["ApiError", "Record", "create_app"]
