"""The ingest routes served without FastAPI's per-request machinery.

A single event's request spent about as much CPU in FastAPI's routing, its exception and
exit-stack middlewares and its endpoint wrapper as in everything the collector does with
the event. The hot routes are declared as FastAPI routes as usual (they are in the OpenAPI
document and keep their paths), marked with :func:`plain`; :class:`PlainRoutes`, the
innermost of the app's middlewares, calls a marked endpoint straight away for a ``POST`` to
its exact path. The middlewares outside it (CORS, request counting, the server-error
handler) apply as they do to every route, and an :class:`~ecrm_collector.gateway.ApiError`
becomes its JSON answer here as the app's exception handler would make it.

A marked endpoint takes the :class:`~starlette.requests.Request` alone and returns a
:class:`~starlette.responses.Response`: nothing FastAPI would inject or convert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ecrm_collector.gateway import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]
_MARK = "__ecrm_plain_route__"


def plain(endpoint: Endpoint) -> Endpoint:
    """Mark an endpoint to be called without FastAPI's request handling (see the module)."""
    setattr(endpoint, _MARK, True)
    return endpoint


class PlainRoutes:
    """ASGI middleware: ``POST`` to a marked route's path → its endpoint; anything else → the app."""

    def __init__(self, app: ASGIApp, routers: Sequence[APIRouter]) -> None:
        """``routers``: those holding marked routes, included in the app without a prefix."""
        self.app = app
        self.routes = {
            route.path: route
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute) and getattr(route.endpoint, _MARK, False) and "POST" in (route.methods or ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # what the request counter labels by
        try:
            response = await route.endpoint(Request(scope, receive))
        except ApiError as exc:
            response = exc.response()
        await response(scope, receive, send)
