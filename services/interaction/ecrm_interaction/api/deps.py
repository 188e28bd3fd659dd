"""What route handlers take as dependencies: the settings, the caller's role, and a database
session per request.

Who may call: Bearer tokens with roles (viewer < agent < marketer < admin). The bootstrap admin
token is ``INTERACTION_API_TOKEN``; more tokens are created with ``ecrm-interaction tokens add
NAME --role ROLE`` or ``POST /v1/tokens`` and stored as SHA-256 hashes. Viewers read; agents
(support staff) also work cases: open them, add notes, change status, priority and assignee;
marketers also change rules, templates, segments, consent and the loyalty program; admins also
manage tokens, lift address suppressions and read the audit log.

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

from ecrm_interaction.engine.contact_policy import PolicySettings
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import tokens
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


async def get_policy(request: Request) -> PolicySettings:
    return settings_of(request).policy()


SettingsDep = Annotated[InteractionSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PolicyDep = Annotated[PolicySettings, Depends(get_policy)]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: a token's name and role (``bootstrap-admin`` for ``INTERACTION_API_TOKEN``)."""

    name: str
    role: str


def _unauthorized() -> HTTPException:
    return HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def identify(request: Request) -> Principal:
    """The caller of a ``Authorization: Bearer TOKEN`` request; 401 without a token in force."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise _unauthorized()
    bootstrap = settings_of(request).interaction_api_token.get_secret_value()
    if hmac.compare_digest(presented.encode(), bootstrap.encode()):
        return Principal("bootstrap-admin", "admin")
    row = await asyncio.to_thread(store_of(request).read, tokens.token_by_hash, tokens.hash_token(presented))
    if row is None:
        raise _unauthorized()
    return Principal(row.name, row.role)


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting tokens of ``role`` or above (:data:`ecrm_interaction.storage.tokens.ROLES`), else 403."""
    needed = tokens.ROLES.index(role)

    async def dependency(request: Request) -> Principal:
        principal = await identify(request)
        if tokens.ROLES.index(principal.role) < needed:
            raise HTTPException(403, "forbidden")
        return principal

    return dependency


Viewer = Annotated[Principal, Depends(require("viewer"))]
Agent = Annotated[Principal, Depends(require("agent"))]
Marketer = Annotated[Principal, Depends(require("marketer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
