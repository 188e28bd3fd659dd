"""The customers' unsubscribe pages (RFC 8058 one-click), reached from the links in messages; no token."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ecrm_interaction.api.deps import SettingsDep, StoreDep
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.unsubscribe import InvalidUnsubscribeToken, verify_unsubscribe
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import customers as customer_store
from ecrm_schemas.catalog import CatalogEvent

UNSUBSCRIBE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Unsubscribe</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>Unsubscribe from our emails?</h1>
<p>You will no longer receive marketing emails from us. Messages about your orders still reach you.</p>
<form method="post" action="{action}"><button type="submit">Unsubscribe</button></form>
</body></html>"""

UNSUBSCRIBED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>You are unsubscribed</h1><p>We will not send you marketing emails any more.</p></body></html>"""


def _customer_of(token: str, settings: InteractionSettings) -> str:
    try:
        return verify_unsubscribe(token, settings.tracking_secret.get_secret_value()).customer_id
    except InvalidUnsubscribeToken:
        raise HTTPException(400, "invalid_unsubscribe_link") from None


def router(dispatcher: Dispatcher | None) -> APIRouter:
    """``dispatcher`` reports each unsubscribe as an ``Unsubscribed`` event."""
    routes = APIRouter(tags=["unsubscribe"])

    @routes.get("/u/{token}", response_class=HTMLResponse)
    async def unsubscribe_page(token: str, settings: SettingsDep) -> HTMLResponse:
        """Asks for confirmation: a link prefetcher or scanner following it unsubscribes nobody."""
        _customer_of(token, settings)
        return HTMLResponse(UNSUBSCRIBE_PAGE.format(action=f"/u/{token}"), headers={"Cache-Control": "no-store"})

    @routes.post("/u/{token}")
    def unsubscribe(token: str, request: Request, settings: SettingsDep, store: StoreDep) -> Response:
        """One-click unsubscribe (mail clients POST ``List-Unsubscribe=One-Click``; the page's
        button too). Idempotent: the second call changes nothing and answers the same."""
        customer_id = _customer_of(token, settings)
        changed = store.write(customer_store.unsubscribe, customer_id, "unsubscribe-link", datetime.now(UTC))
        if changed and dispatcher is not None:
            message_id = f"ecrm-interaction-unsubscribe-{customer_id}"
            dispatcher.report(CatalogEvent.UNSUBSCRIBED, customer_id, message_id, {"list_id": "marketing"})
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(UNSUBSCRIBED_PAGE)
        return JSONResponse({"status": "unsubscribed"})

    return routes
