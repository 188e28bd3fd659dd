"""REST API tokens: list, create (shown once), revoke. Admins only."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from ecrm_interaction.api.deps import Admin, SessionDep
from ecrm_interaction.storage import tokens
from ecrm_interaction.storage.store import aware


class TokenIn(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    role: Literal["viewer", "agent", "marketer", "admin"]


def router() -> APIRouter:
    routes = APIRouter(tags=["admin"])

    @routes.get("/v1/tokens")
    def list_tokens(_who: Admin, session: SessionDep) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "role": t.role, "created_at": aware(t.created_at), "revoked_at": aware(t.revoked_at)}
            for t in tokens.tokens(session)
        ]

    @routes.post("/v1/tokens", status_code=201)
    def create_token(token: TokenIn, who: Admin, session: SessionDep) -> dict[str, str]:
        """The token is shown once."""
        try:
            value = tokens.add_token(session, token.name, token.role, who.name)
        except IntegrityError as exc:
            raise HTTPException(409, "token_exists") from exc
        return {"name": token.name, "role": token.role, "token": value}

    @routes.delete("/v1/tokens/{name}", status_code=204)
    def revoke_token(name: str, who: Admin, session: SessionDep) -> Response:
        if not tokens.revoke_token(session, name, who.name):
            raise HTTPException(404, "token_not_found")
        return Response(status_code=204)

    return routes
