"""Who may call the REST API: Bearer tokens with roles (viewer < agent < marketer < admin).

The bootstrap admin token is ``INTERACTION_API_TOKEN``; more tokens are created with
``ecrm-interaction tokens add NAME --role ROLE`` or ``POST /v1/tokens`` and stored as
SHA-256 hashes. Viewers read; agents (support staff) also work cases: open them, add notes,
change status, priority and assignee; marketers also change rules, templates, segments,
consent and the loyalty program; admins also manage tokens, lift address suppressions and
read the audit log.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from ecrm_interaction.storage.store import ROLES, Store, hash_token


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str


def authenticator(store: Store, bootstrap_token: str) -> Callable[[str], Callable[[Request], Principal]]:
    """``require(role)`` gives a FastAPI dependency that admits tokens of that role or above."""

    def identify(request: Request) -> Principal:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        if hmac.compare_digest(presented.encode(), bootstrap_token.encode()):
            return Principal("bootstrap-admin", "admin")
        row = store.token_by_hash(hash_token(presented))
        if row is None:
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        return Principal(row.name, row.role)

    def require(role: str) -> Callable[[Request], Principal]:
        needed = ROLES.index(role)

        def dependency(request: Request) -> Principal:
            principal = identify(request)
            if ROLES.index(principal.role) < needed:
                raise HTTPException(403, "forbidden")
            return principal

        return dependency

    return require
