"""Privacy requests: export and erase everything stored about a customer. Admins only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ecrm_interaction.api.deps import Admin, SessionDep
from ecrm_interaction.privacy.requests import PrivacyRequests
from ecrm_interaction.storage import audit
from ecrm_schemas.suppressions import identity_digest


def router(privacy: PrivacyRequests | None) -> APIRouter:
    """``privacy`` (it needs ClickHouse) serves the requests; 503 without."""
    routes = APIRouter(tags=["privacy"])

    def requests() -> PrivacyRequests:
        if privacy is None:
            raise HTTPException(503, "privacy requests need ClickHouse: set CLICKHOUSE_URL")
        return privacy

    @routes.get("/v1/customers/{customer_id}/export")
    def export_customer(customer_id: str, who: Admin, session: SessionDep) -> dict[str, Any]:
        """Everything stored about the customer (GDPR access, CCPA right to know): every
        ClickHouse and relational row of their user id and anonymous ids. Admins only."""
        document = requests().export(customer_id)
        if document is None:
            raise HTTPException(404, "customer_not_found")
        audit.record(session, who.name, "export", "customer", identity_digest(document["customer_id"])[:16], {})
        return document

    @routes.delete("/v1/customers/{customer_id}")
    def erase_customer(customer_id: str, who: Admin) -> dict[str, Any]:
        """Erase the customer (GDPR erasure, CCPA deletion): every row of their ids in ClickHouse
        and the relational store, and their ids suppressed so that later events are dropped.
        Answers what was removed and what is left (zero everywhere when complete). Admins only."""
        return requests().erase(customer_id, who.name).as_dict()

    return routes
