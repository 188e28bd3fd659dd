"""Probes and metrics for operators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ecrm_interaction.consumer.worker import InteractionWorker


def router(worker: InteractionWorker | None) -> APIRouter:
    routes = APIRouter(tags=["operations"])

    @routes.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @routes.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready while the consumer runs (503 while not)."""
        if worker is not None and not worker.ready:
            return JSONResponse({"status": "unready", "reason": "consumer not running"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @routes.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return routes
