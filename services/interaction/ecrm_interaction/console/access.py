"""Who may open which console page or send which form: the console's role table.

Every console route is listed in :data:`PAGES` with the least role that may use it (a drift
test fails for a route missing here). A form's role must be the role of the API route it calls
(:data:`ACTIONS` names it; the test checks the two agree), and the API enforces it again.
Each module of ``pages/`` declares its own rows (its ``PAGES`` and ``ACTIONS``); ``install``
gathers them here, so the table is whole once the app is built.
Pages are shown only to people signed in; roles as for API tokens: viewer < agent < marketer < admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from ecrm_interaction.api.sessions import CSRF_FIELD, CSRF_HEADER, ROLES
from ecrm_interaction.console.api import ConsoleApi

PAGES: dict[tuple[str, str], str] = {}
"""(method, path) → least role of every console route ("public": no sign-in)."""

ACTIONS: dict[tuple[str, str], tuple[str, str]] = {}
"""Console form → the API route it calls (the form's role is that route's)."""


class SignInRequired(Exception):
    """Raised by a page for a visitor not signed in: answered with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.location = f"/console/sign-in?next={quote(next_path)}"


class NotAllowed(Exception):
    """Raised by a page the signed-in person's role may not open: answered with a 403 page."""

    def __init__(self, needed: str) -> None:
        self.needed = needed


@dataclass(frozen=True, slots=True)
class Staff:
    """The signed-in person, and the API on their behalf."""

    name: str
    role: str
    csrf: str
    api: ConsoleApi

    def may(self, role: str) -> bool:
        """Whether this person's role is ``role`` or above (pages show only what one may do)."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def acting(self, request: Request, csrf: str | None) -> ConsoleApi:
        """The API for a change: with the CSRF token the form or htmx sent (the API checks it)."""
        return ConsoleApi(request, csrf)

    async def posted(self, request: Request) -> tuple[dict[str, str], ConsoleApi]:
        """A posted form's fields (the last value of each; ``csrf_token`` left out) and the API
        to make its change with the CSRF token it carried (form field or ``X-CSRF-Token``)."""
        form = await request.form()
        fields = {key: str(value) for key, value in form.items() if key != CSRF_FIELD}
        csrf = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, ""))
        return fields, ConsoleApi(request, csrf)


def role_of(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return PAGES[(request.method, path)]


async def signed_in(request: Request) -> Staff:
    """The person signed in, asked of the API (``GET /v1/me``); the page's role from :data:`PAGES`."""
    needed = role_of(request)
    api = ConsoleApi(request)
    me = await api.get("/v1/me")
    if me.status == 401 or not me.ok or not me.body.get("user"):
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    staff = Staff(name=me.body["name"], role=me.body["role"], csrf=me.body["csrf_token"], api=api)
    if not staff.may(needed):
        raise NotAllowed(needed)
    return staff


StaffDep = Annotated[Staff, Depends(signed_in)]
