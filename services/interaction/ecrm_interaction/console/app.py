"""The console's part of the interaction app: its pages, its static files, its error pages."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from ecrm_interaction.console import access, pages
from ecrm_interaction.console.access import NotAllowed, SignInRequired
from ecrm_interaction.console.rendering import STATIC, render


def routes_of(routes: Sequence[BaseRoute]) -> list[APIRoute]:
    """Every APIRoute of ``routes``, those of included routers too (FastAPI keeps an included
    router as one route): what the role-table test and the console bench walk."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += routes_of(included.routes)
    return found


def page_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(pages.__path__))


def install(app: FastAPI) -> None:
    """Serve the console under ``/console`` (every module of ``pages/``: its ``router()``, its
    rows of the role table ``PAGES`` and ``ACTIONS``) and its files under ``/console/static``."""
    for name in page_modules():
        module = importlib.import_module(f"{pages.__name__}.{name}")
        access.PAGES.update(module.PAGES)
        access.ACTIONS.update(module.ACTIONS)
        app.include_router(module.router())
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: SignInRequired) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": exc.location})
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        message = f"This page needs the {exc.needed} role or above; ask an admin if you need it."
        return render(request, "error.html", {"heading": "Not allowed", "message": message}, status=403)
