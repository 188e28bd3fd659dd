"""The interaction service's HTTP shell: a small read API, health and metrics.

The Kafka worker runs inside the same process, started and stopped with the app.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ecrm_interaction.rule_matching import RuleSpec
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.store import Store
from ecrm_interaction.worker import InteractionWorker


class SendView(BaseModel):
    id: str
    rule_id: str
    customer_id: str
    trigger_message_id: str
    status: str
    reason: str | None
    subject: str | None
    created_at: datetime
    sent_at: datetime | None


def create_app(settings: InteractionSettings, store: Store, worker: InteractionWorker | None) -> FastAPI:
    """Build the app; with a worker, it consumes profile changes for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        task = asyncio.create_task(worker.run(stopping)) if worker else None
        yield
        stopping.set()
        if task is not None:
            await task

    app = FastAPI(title="eCRM interaction", version="0.1.0", lifespan=lifespan)
    token = settings.interaction_api_token.get_secret_value()

    @app.exception_handler(HTTPException)
    async def _json_errors(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.detail, "message": str(exc.detail), "errors": []}},
                            status_code=exc.status_code, headers=exc.headers)  # fmt: skip

    def authorized(request: Request) -> None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/v1/rules", dependencies=[Depends(authorized)], tags=["rules"])
    async def list_rules() -> list[RuleSpec]:
        """Every rule, enabled or not."""
        return await asyncio.to_thread(store.all_rules)

    @app.get("/v1/sends", dependencies=[Depends(authorized)], tags=["sends"])
    async def list_sends(customer_id: str | None = None, limit: int = 100) -> list[SendView]:
        """The newest send decisions, optionally for one customer."""
        sends = await asyncio.to_thread(store.sends, customer_id, min(max(limit, 1), 1000))
        return [SendView.model_validate(s, from_attributes=True) for s in sends]

    @app.get("/livez", tags=["operations"])
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        if worker is not None and not worker.ready:
            return JSONResponse({"status": "unready", "reason": "consumer not running"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
