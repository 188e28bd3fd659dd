"""What every ingest route shares: errors, authentication, bounded bodies and acknowledged delivery.

A route is a thin shell: it asks the :class:`Gateway` who is calling (write key → source),
reads the body within its limit, hands the decoded events to the pure ingest step and
awaits :meth:`Gateway.deliver`, which returns only when Kafka acknowledged every record
(or raises a 503).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ecrm_collector import metrics
from ecrm_collector.http_body import BodyError, parse_json, read_body
from ecrm_collector.ingest import IngestPlan, plan_ingest
from ecrm_collector.producer import AsyncProducer, DeliveryFailed
from ecrm_collector.rate_limit import SourceRateLimiter
from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import Source, SourceDirectory
from ecrm_schemas.suppressions import SuppressionList
from ecrm_schemas.topics import EVENTS, EVENTS_DLQ

log = structlog.get_logger()
RETRY_AFTER_S = 5
WRITE_KEY_FIELD = "writeKey"
"""Segment's analytics.js puts the write key in the body (sent as text/plain, so browsers
make a simple CORS request with no preflight); Basic or Bearer auth work too."""


class ApiError(Exception):
    """An answer other than 2xx, rendered as ``{"error": {"code", "message", "errors"}}``.

    ``errors`` is never empty: without a list of its own, the answer names ``field`` (``$``:
    the request as a whole) and ``rule`` (by default the code) with the message.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        *,
        field: str = "$",
        rule: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = errors or [{"field": field, "rule": rule or code, "message": message}]
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "errors": self.errors}}
        return JSONResponse(body, status_code=self.status, headers=self.headers or None)


def body_refused(exc: BodyError) -> ApiError:
    """The answer to a body that cannot be used."""
    return ApiError(exc.status, exc.code, exc.message, field=exc.field, rule=exc.rule)


def presented_key(request: Request) -> str | None:
    """The write key from ``Authorization``: the Basic username (Segment) or a Bearer token."""
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


def pop_body_key(body: Any) -> str | None:
    """Remove and return a ``writeKey`` carried in a JSON body (it must never reach Kafka)."""
    if isinstance(body, dict):
        value = body.pop(WRITE_KEY_FIELD, None)
        return value if isinstance(value, str) and value else None
    return None


class JsonRequest(NamedTuple):
    """An authenticated request's source and JSON body (``writeKey`` removed), and the body's size."""

    source: Source
    body: Any
    size: int


@dataclass(slots=True)
class Gateway:
    """The collector's shared I/O: sources, the rate limiter and the producer."""

    settings: CollectorSettings
    producer: AsyncProducer
    sources: SourceDirectory
    limiter: SourceRateLimiter
    suppressions: SuppressionList

    @classmethod
    def build(
        cls, settings: CollectorSettings, producer: AsyncProducer, suppressions: SuppressionList | None = None
    ) -> Gateway:
        return cls(
            settings=settings,
            producer=producer,
            sources=SourceDirectory(settings.collector_sources_file, settings.write_keys()),
            limiter=SourceRateLimiter(settings.collector_rate_limit_per_s, settings.collector_rate_limit_burst),
            suppressions=suppressions if suppressions is not None else SuppressionList(),
        )

    def authenticate(self, request: Request, presented: str | None, field: str = WRITE_KEY_FIELD) -> Source:
        """The active source of ``presented`` (found in ``field``), allowed from the request's
        origin and under its rate."""
        if presented is None:
            if request.headers.get("authorization"):
                raise ApiError(401, "unauthorized", "the Authorization header is neither Basic (the write key as "
                               "username) nor Bearer", field="Authorization", rule="malformed")  # fmt: skip
            raise ApiError(
                401,
                "unauthorized",
                "send the write key as the HTTP Basic username, a Bearer token or `writeKey`",
                field=WRITE_KEY_FIELD,
                rule="missing",
            )
        source = self.sources.find(presented)
        if source is None:
            raise ApiError(401, "unauthorized", "unknown or revoked write key", field=field, rule="unknown_key")
        origin = request.headers.get("origin")
        if not source.allows_origin(origin):
            raise ApiError(403, "origin_not_allowed", f"this source does not accept events from the origin {origin}",
                           field="Origin")  # fmt: skip
        retry_after = self.limiter.admit(source.key_hash)
        if retry_after is not None:
            metrics.RATE_LIMITED.inc()
            raise ApiError(
                429,
                "rate_limited",
                f"this source may make {self.settings.collector_rate_limit_per_s:g} requests per second",
                headers={"Retry-After": str(retry_after)},
                field=WRITE_KEY_FIELD,
                rule="rate_limit",
            )
        return source

    async def read_raw(self, request: Request, limit: int) -> bytes:
        self._refuse_declared_oversize(request, limit)
        try:
            return await read_body(request.stream(), encoding=request.headers.get("content-encoding"), limit=limit)
        except BodyError as exc:
            raise body_refused(exc) from None

    async def read_json(self, request: Request, limit: int) -> tuple[Any, int]:
        """The body parsed as JSON, and its (decoded) size in bytes."""
        raw = await self.read_raw(request, limit)
        try:
            return parse_json(raw), len(raw)
        except BodyError as exc:
            raise body_refused(exc) from None

    @staticmethod
    def _refuse_declared_oversize(request: Request, limit: int) -> None:
        """413 before reading when the declared length already says too large (gzip's framing
        may add a little to an incompressible body, hence the slack)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + limit // 100 + 1024:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes", field="body", rule="max_bytes")

    async def authenticated_json(self, request: Request, limit: int) -> JsonRequest:
        """Authenticate and read a JSON body; the key may be in the header, the query string
        (``?writeKey=``, RudderStack's beacon) or the body.

        With a key in the header or query string it is checked before the body is read, so an
        unknown caller never costs a body read.
        """
        from_header = presented_key(request)
        from_query = request.query_params.get(WRITE_KEY_FIELD) if request.scope["query_string"] else None
        header_key = from_header or from_query
        field = WRITE_KEY_FIELD if from_header is None and from_query is not None else "Authorization"
        if header_key is not None or request.headers.get("authorization"):
            source = self.authenticate(request, header_key, field)
            body, size = await self.read_json(request, limit)
            pop_body_key(body)
            return JsonRequest(source, body, size)
        body, size = await self.read_json(request, limit)
        return JsonRequest(self.authenticate(request, pop_body_key(body)), body, size)

    def plan(
        self,
        raw_events: Sequence[Any],
        source: Source | str,
        *,
        event_type: str | None = None,
        batch_defaults: dict[str, Any] | None = None,
        request_bytes: int | None = None,
        backfill: bool = False,
    ) -> IngestPlan:
        """The pure ingest step with this collector's limits; ``source`` is a source (its key's
        kind decides what it may send) or the name of a verified route (signed tracking links,
        signed provider webhooks)."""
        name = source.name if isinstance(source, Source) else source
        return plan_ingest(
            raw_events,
            received_at=datetime.now(UTC),
            source=f"collector:{name}",
            sender_kind=source.kind if isinstance(source, Source) else "verified",
            max_event_bytes=self.settings.collector_max_event_bytes,
            event_type=event_type,
            batch_defaults=batch_defaults,
            request_bytes=request_bytes,
            suppressions=self.suppressions,
            backfill=backfill,
        )

    async def deliver(self, plan: IngestPlan) -> None:
        """Produce the plan's records and wait for every acknowledgment, or raise 503."""
        started = time.perf_counter()
        records = [(EVENTS.name, r.key, r.value) for r in plan.accepted]
        records += [(EVENTS_DLQ.name, r.dead_letter.key, r.dead_letter.value) for r in plan.rejected]
        acknowledged = self.producer.produce_all(records)
        try:
            async with asyncio.timeout(self.settings.collector_produce_timeout_s):  # cheaper than wait_for
                await acknowledged
        except (DeliveryFailed, TimeoutError) as exc:
            metrics.PRODUCE_FAILURES.inc()
            log.warning("produce_failed", error=str(exc) or "timeout", records=len(records))
            raise ApiError(
                503,
                "broker_unavailable",
                "events could not be stored; retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None  # field "$": the request as a whole, nothing the caller sent
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_ACCEPTED.inc(len(plan.accepted))
        metrics.EVENTS_SUPPRESSED.inc(plan.suppressed)
        for rejection in plan.rejected:
            for error in rejection.errors:
                metrics.EVENTS_REJECTED.labels(error.rule).inc()


class FieldErrorBody(BaseModel):
    field: str
    rule: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    errors: list[dict[str, Any]]
    """For invalid events: ``field``, ``rule`` and ``message`` of each failed rule (and ``index`` in a list)."""


class ErrorBody(BaseModel):
    """Every answer other than 2xx."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer."""
    meaning = {
        400: "Invalid body or event: the field and rule that failed",
        401: "Missing, unknown or revoked write key",
        403: "The source does not accept requests from this origin",
        413: "Body or event over its size limit",
        415: "Unsupported Content-Encoding or Content-Type",
        429: "Over the source's rate; see Retry-After",
        503: "Kafka did not acknowledge in time; nothing is promised stored, retry after Retry-After",
    }
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}
