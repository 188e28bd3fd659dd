"""The email channel: our own open pixel and click redirect, and the ESPs' event webhooks."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_collector.email_tracking import PIXEL_GIF, click_event, is_machine_open, open_event
from ecrm_collector.gateway import ApiError, Gateway, error_responses
from ecrm_schemas.tracking import InvalidToken, TrackingToken, verify

TRACKING_ROUTE = "email-tracking"


def router(gateway: Gateway) -> APIRouter:
    routes = APIRouter(tags=["email"])
    settings = gateway.settings

    async def tracked(raw_event: dict[str, Any]) -> None:
        await gateway.deliver(gateway.plan([raw_event], TRACKING_ROUTE))

    def token_of(value: str) -> TrackingToken:
        try:
            return verify(value, settings.tracking_secret.get_secret_value())
        except InvalidToken:
            raise ApiError(400, "invalid_token", "the tracking token is invalid or was altered") from None

    @routes.get("/v1/e/o/{token}.gif", responses=error_responses(400, 503))
    async def email_open(token: str, request: Request) -> Response:
        """Open pixel: records ``Email Opened`` (flagging likely machine opens) and returns a 1x1 GIF."""
        claims = token_of(token)
        agent = request.headers.get("user-agent")
        machine = is_machine_open(claims, agent, time.time(), settings.collector_machine_open_s)
        await tracked(open_event(claims, machine_open=machine, user_agent=agent))
        return Response(PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store, max-age=0"})

    @routes.get("/v1/e/c/{token}", responses=error_responses(400, 503), response_class=RedirectResponse)
    async def email_click(token: str, request: Request) -> Response:
        """Click redirect: records ``Email Link Clicked`` and redirects to the signed URL, and only there."""
        claims = token_of(token)
        if not claims.url or not claims.url.startswith(("https://", "http://")):
            raise ApiError(400, "invalid_token", "the tracking token carries no link")
        await tracked(click_event(claims, request.headers.get("user-agent")))
        return RedirectResponse(claims.url, status_code=302, headers={"Cache-Control": "no-store"})

    return routes
