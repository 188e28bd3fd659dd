"""What route handlers take as dependencies: the settings, the caller's role, and a database
session per request.

Who may call: Bearer tokens with roles (viewer < agent < marketer < admin). The bootstrap admin
token is ``INTERACTION_API_TOKEN``; more tokens are created with ``ecrm-interaction tokens add
NAME --role ROLE`` or ``POST /v1/tokens`` and stored as SHA-256 hashes. Viewers read; agents
(support staff) also work cases: open them, add notes, change status, priority and assignee;
marketers also change rules, templates, segments, consent and the loyalty program; admins also
manage tokens, lift address suppressions and read the audit log.

People signed in to the staff console call the same API with their session cookie
(:mod:`ecrm_interaction.api.sessions`) instead of a token: their role is their user's, and a
request that changes something must carry the session's CSRF token in ``X-CSRF-Token``.

The session is the request's unit of work: it commits when the handler returns and rolls back
when it raises (an HTTP error too), before the answer is sent; storage functions only add to it.
``create_app`` puts the settings and the store in ``app.state``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.api.sessions import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, SessionSigner
from ecrm_interaction.engine.contact_policy import PolicySettings
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import tokens, users
from ecrm_interaction.storage.store import Store


def settings_of(request: Request) -> InteractionSettings:
    settings: InteractionSettings = request.app.state.settings
    return settings


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


# The dependencies that do no I/O are coroutines: FastAPI runs a plain function in a thread.
async def get_settings(request: Request) -> InteractionSettings:
    return settings_of(request)


async def get_store(request: Request) -> Store:
    return store_of(request)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session: committed when the handler returns, rolled back when it raises."""
    session = store_of(request).sessions()
    try:
        yield session
    except BaseException:
        await asyncio.to_thread(_end, session, commit=False)
        raise
    await asyncio.to_thread(_end, session, commit=True)


def _end(session: Session, *, commit: bool) -> None:
    with session:
        if commit:
            session.commit()
        else:
            session.rollback()


async def get_warehouse(request: Request) -> Warehouse:
    """ClickHouse for the routes that read it; 503 ``clickhouse_unavailable`` when not configured."""
    warehouse: Warehouse | None = request.app.state.warehouse
    if warehouse is None:
        raise HTTPException(503, "clickhouse_unavailable")
    return warehouse


def signer_of(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.session_signer
    return signer


async def get_policy(request: Request) -> PolicySettings:
    return settings_of(request).policy()


SettingsDep = Annotated[InteractionSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PolicyDep = Annotated[PolicySettings, Depends(get_policy)]
WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: a token's name and role (``bootstrap-admin`` for ``INTERACTION_API_TOKEN``), or
    a console user's email and role (``user_id`` and the session's ``csrf`` token set)."""

    name: str
    role: str
    user_id: str | None = None
    csrf: str | None = None


def _unauthorized() -> HTTPException:
    return HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def identify(request: Request) -> Principal:
    """The caller of a ``Authorization: Bearer TOKEN`` request, or of a console session; 401
    without a token or session in force, 403 when a session's change lacks its CSRF token."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if not presented and (cookie := request.cookies.get(SESSION_COOKIE)):
        return await _session_principal(request, cookie)
    if scheme.lower() != "bearer" or not presented:
        raise _unauthorized()
    bootstrap = settings_of(request).interaction_api_token.get_secret_value()
    if hmac.compare_digest(presented.encode(), bootstrap.encode()):
        return Principal("bootstrap-admin", "admin")
    row = await asyncio.to_thread(store_of(request).read, tokens.token_by_hash, tokens.hash_token(presented))
    if row is None:
        raise _unauthorized()
    return Principal(row.name, row.role)


async def _session_principal(request: Request, cookie: str) -> Principal:
    session = signer_of(request).read(cookie)
    if session is None:
        raise _unauthorized()
    user = await asyncio.to_thread(store_of(request).read, users.user_by_id, session.user_id)
    if user is None or user.disabled_at is not None or session.issued_at < user.sessions_valid_after:
        raise _unauthorized()
    if request.method not in SAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(presented.encode(), session.csrf.encode()):
            raise HTTPException(403, "csrf_token_missing_or_wrong")
    return Principal(user.email, user.role, user_id=user.id, csrf=session.csrf)


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting tokens of ``role`` or above (:data:`ecrm_interaction.storage.tokens.ROLES`), else 403."""
    needed = tokens.ROLES.index(role)

    async def dependency(request: Request) -> Principal:
        principal = await identify(request)
        if tokens.ROLES.index(principal.role) < needed:
            raise HTTPException(403, "forbidden")
        return principal

    dependency.role = role  # type: ignore[attr-defined]  # read by the console's role-table test
    return dependency


Viewer = Annotated[Principal, Depends(require("viewer"))]
Agent = Annotated[Principal, Depends(require("agent"))]
Marketer = Annotated[Principal, Depends(require("marketer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
