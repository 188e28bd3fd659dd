"""The browser tracker, ``/v1/ecrm.js`` (see ``static/ecrm.js`` and the README)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

SCRIPT_MEDIA_TYPE = "application/javascript; charset=utf-8"


@cache
def tracker_script() -> tuple[bytes, str]:
    """The script and its ETag, read once from the package."""
    body = files("ecrm_collector").joinpath("static/ecrm.js").read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def router() -> APIRouter:
    routes = APIRouter(tags=["browser"])

    @routes.get("/v1/ecrm.js", response_class=Response, responses={200: {"content": {SCRIPT_MEDIA_TYPE: {}}}})
    async def tracker(request: Request) -> Response:
        """The JavaScript tracker: `analytics.page()`, `track()`, `identify()`, automatic page views,
        clicks on elements with `data-ecrm-track`, batching and `sendBeacon` on unload."""
        body, etag = tracker_script()
        headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=SCRIPT_MEDIA_TYPE, headers=headers)

    return routes
