"""Address suppressions (hard bounces, complaints): list those in force, lift one."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from ecrm_interaction.api.deps import Admin, SessionDep, Viewer
from ecrm_interaction.api.views import SuppressionView
from ecrm_interaction.engine.contact_policy import address_digest
from ecrm_interaction.storage import suppressions


class LiftIn(BaseModel):
    """Which suppression to lift (the address, or its digest as ``GET /v1/suppressions`` lists it) and why."""

    address: str | None = Field(default=None, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    address_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    reason: str = Field(min_length=3, max_length=500)
    """Why it may be mailed again (kept in the audit log)."""

    def digest(self) -> str:
        if self.address is not None:
            return address_digest(self.address)
        if self.address_digest is None:
            error = {"loc": ("body", "address"), "type": "missing", "msg": "give the address or its address_digest"}
            raise RequestValidationError([error])
        return self.address_digest


def router() -> APIRouter:
    routes = APIRouter(tags=["admin"])

    @routes.get("/v1/suppressions")
    def list_suppressions(_who: Viewer, session: SessionDep, limit: int = 100) -> list[SuppressionView]:
        """Addresses in force suppressed (hard bounces, complaints), by digest, newest first."""
        rows = suppressions.listed(session, min(max(limit, 1), 1000))
        return [SuppressionView.model_validate(r, from_attributes=True) for r in rows]

    @routes.post("/v1/suppressions/lift")
    def lift_suppression(lift: LiftIn, who: Admin, session: SessionDep) -> SuppressionView:
        """Let an address be mailed again (the mailbox works again, a complaint was a mistake);
        audited with the reason. Admins only. The address travels in the body, not the URL, so
        that no access log keeps it."""
        row = suppressions.lift(session, lift.digest(), who.name, lift.reason, datetime.now(UTC))
        if row is None:
            raise HTTPException(404, "suppression_not_found")
        return SuppressionView.model_validate(row, from_attributes=True)

    return routes
