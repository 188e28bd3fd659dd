"""The email channel: our own open pixel and click redirect, and the ESPs' event webhooks."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import httpx
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from ecrm_collector import esp_webhooks as esp
from ecrm_collector.email_tracking import PIXEL_GIF, click_event, is_machine_open, open_event
from ecrm_collector.gateway import RETRY_AFTER_S, ApiError, Gateway, error_responses
from ecrm_collector.routes.segment import json_response
from ecrm_schemas.tracking import InvalidToken, TrackingToken, verify

TRACKING_ROUTE = "email-tracking"
log = structlog.get_logger()


def router(gateway: Gateway) -> APIRouter:
    routes = APIRouter(tags=["email"])
    settings = gateway.settings

    async def tracked(raw_event: dict[str, Any]) -> None:
        await gateway.deliver(gateway.plan([raw_event], TRACKING_ROUTE))

    def token_of(value: str) -> TrackingToken:
        try:
            return verify(value, settings.tracking_secret.get_secret_value())
        except InvalidToken:
            raise ApiError(400, "invalid_token", "the tracking token is invalid or was altered", field="token",
                           rule="signature") from None  # fmt: skip

    @routes.get("/v1/e/o/{token}.gif", responses=error_responses(400, 503))
    async def email_open(token: str, request: Request) -> Response:
        """Open pixel: records ``Email Opened`` (flagging likely machine opens) and returns a 1x1 GIF."""
        claims = token_of(token)
        agent = request.headers.get("user-agent")
        client_ip = request.client.host if request.client else None
        machine = is_machine_open(claims, agent, time.time(), settings.collector_machine_open_s, client_ip)
        await tracked(open_event(claims, machine_open=machine, user_agent=agent))
        return Response(PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store, max-age=0"})

    @routes.get("/v1/e/c/{token}", responses=error_responses(400, 503), response_class=RedirectResponse)
    async def email_click(token: str, request: Request) -> Response:
        """Click redirect: records ``Email Link Clicked`` and redirects to the signed URL, and only there."""
        claims = token_of(token)
        if not claims.url or not claims.url.startswith(("https://", "http://")):
            raise ApiError(
                400, "invalid_token", "the tracking token carries no link", field="token.url", rule="missing"
            )
        await tracked(click_event(claims, request.headers.get("user-agent")))
        return RedirectResponse(claims.url, status_code=302, headers={"Cache-Control": "no-store"})

    routes.include_router(_esp_webhooks(gateway))
    return routes


class WebhookAccepted(BaseModel):
    success: bool
    accepted: int
    """Email events stored on Kafka."""
    ignored: int
    """Provider events with no customer meaning (e.g. SendGrid ``processed``), counted, not stored."""
    rejected: list[dict[str, Any]]
    """Normalised events that failed validation (dead-lettered with the reason)."""


class ReplayGuard:
    """Keys of signed deliveries already answered 2xx, remembered for the signature's lifetime.

    Per process: behind several collector replicas a replay may reach another one, where
    the messageId of the replayed events (the provider's event id) still deduplicates them.
    """

    def __init__(self, ttl_s: float, max_keys: int = 100_000) -> None:
        self.ttl_s, self.max_keys = ttl_s, max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str, now: float) -> bool:
        while self._seen and (next(iter(self._seen.values())) < now or len(self._seen) > self.max_keys):
            self._seen.popitem(last=False)
        return key in self._seen

    def remember(self, key: str, now: float) -> None:
        self._seen[key] = now + self.ttl_s


def _esp_webhooks(gateway: Gateway) -> APIRouter:
    """``POST /v1/email/events/{provider}``: SendGrid, Amazon SES (through SNS) and Mailgun.

    A provider's route works once its verification setting is configured (404 otherwise);
    every request must carry the provider's valid signature (401 otherwise).
    """
    routes = APIRouter()
    settings = gateway.settings
    mailgun_replays = ReplayGuard(esp.MAILGUN_MAX_AGE_S)
    certificates: dict[str, bytes] = {}
    errors = error_responses(400, 401, 403, 413, 503)

    def not_enabled(provider: str, setting: str) -> ApiError:
        return ApiError(404, "provider_not_enabled", f"{provider} webhooks are off: set {setting.upper()}",
                        field="provider", rule="not_enabled")  # fmt: skip

    async def accept(provider: str, result: esp.WebhookResult) -> Response:
        plan = gateway.plan(result.events, f"email-webhook:{provider}")
        await gateway.deliver(plan)
        rejected = [{"index": r.index, "errors": [e.as_dict() for e in r.errors]} for r in plan.rejected]
        body = {"success": True, "accepted": len(plan.accepted), "ignored": result.ignored, "rejected": rejected}
        return json_response(body)

    async def fetch(url: str) -> bytes:
        try:
            async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
                response = await client.get(url)
                response.raise_for_status()
        except httpx.HTTPError:
            log.warning("sns_fetch_failed", host=httpx.URL(url).host)
            raise ApiError(503, "upstream_unavailable", "Amazon SNS could not be reached; retry later",
                           headers={"Retry-After": str(RETRY_AFTER_S)}, field="SigningCertURL") from None  # fmt: skip
        return response.content

    def refused(exc: esp.WebhookError) -> ApiError:
        return ApiError(exc.status, exc.rule, exc.message, [exc.as_dict()])

    @routes.post("/v1/email/events/sendgrid", response_model=WebhookAccepted, responses=errors)
    async def sendgrid_webhook(request: Request) -> Response:
        """SendGrid's Event Webhook, signed (enable "Signed Event Webhook" and set
        `COLLECTOR_SENDGRID_VERIFICATION_KEY`)."""
        if not settings.collector_sendgrid_verification_key:
            raise not_enabled("SendGrid", "collector_sendgrid_verification_key")
        body = await gateway.read_raw(request, settings.collector_max_batch_bytes)
        try:
            result = esp.handle_sendgrid(
                body,
                signature=request.headers.get(esp.SENDGRID_SIGNATURE_HEADER),
                timestamp=request.headers.get(esp.SENDGRID_TIMESTAMP_HEADER),
                public_key=settings.collector_sendgrid_verification_key,
                now=time.time(),
            )
        except esp.WebhookError as exc:
            raise refused(exc) from None
        return await accept("sendgrid", result)

    @routes.post("/v1/email/events/mailgun", response_model=WebhookAccepted, responses=errors)
    async def mailgun_webhook(request: Request) -> Response:
        """Mailgun's webhooks (JSON), signed with the HTTP webhook signing key
        (`COLLECTOR_MAILGUN_SIGNING_KEY`). A replayed signature is acknowledged and dropped."""
        if settings.collector_mailgun_signing_key is None:
            raise not_enabled("Mailgun", "collector_mailgun_signing_key")
        body = await gateway.read_raw(request, settings.collector_max_batch_bytes)
        now = time.time()
        try:
            result = esp.handle_mailgun(
                body, signing_key=settings.collector_mailgun_signing_key.get_secret_value(), now=now
            )
        except esp.WebhookError as exc:
            raise refused(exc) from None
        if result.replay_key is not None and mailgun_replays.seen(result.replay_key, now):
            return json_response({"success": True, "accepted": 0, "ignored": len(result.events), "rejected": []})
        response = await accept("mailgun", result)
        if result.replay_key is not None:
            mailgun_replays.remember(result.replay_key, now)
        return response

    @routes.post("/v1/email/events/ses", response_model=WebhookAccepted, responses=errors)
    async def ses_webhook(request: Request) -> Response:
        """Amazon SES event publishing or notifications, delivered by an SNS HTTPS subscription.
        The SNS signature is checked against AWS's certificate; only the topics in
        `COLLECTOR_SES_TOPIC_ARNS` are accepted; the subscription is confirmed automatically."""
        allowed = settings.ses_topic_arns()
        if not allowed:
            raise not_enabled("Amazon SES", "collector_ses_topic_arns")
        body = await gateway.read_raw(request, settings.collector_max_batch_bytes)
        pattern = settings.collector_sns_cert_url_pattern
        try:
            envelope = esp.parse_sns_envelope(body)
            cert_url = esp.sns_cert_url(envelope, pattern)
            if cert_url not in certificates:
                certificates[cert_url] = await fetch(cert_url)
            outcome = esp.handle_sns(
                envelope, certificate_pem=certificates[cert_url], allowed_topic_arns=allowed, cert_url_pattern=pattern
            )
        except esp.WebhookError as exc:
            raise refused(exc) from None
        if outcome.subscribe_url is not None:
            await fetch(outcome.subscribe_url)
            log.info("sns_subscription_confirmed", topic_arn=envelope.topic_arn)
        return await accept("ses", outcome.result)

    return routes
