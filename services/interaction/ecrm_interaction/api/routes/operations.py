"""Probes and metrics for operators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ecrm_interaction.api.services.assistant import Assistant
from ecrm_interaction.consumer.worker import InteractionWorker


def router(worker: InteractionWorker | None, assistant: Assistant | None = None) -> APIRouter:
    routes = APIRouter(tags=["operations"])

    @routes.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @routes.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready while the consumer runs and once the assistant's knowledge index is built at
        start-up (503 while not: about 10 s for the example shop's 30 articles in four languages)."""
        if worker is not None and not worker.ready:
            return JSONResponse({"status": "unready", "reason": "consumer not running"}, status_code=503)
        if assistant is not None and not assistant.prepared:
            return JSONResponse(
                {"status": "unready", "reason": "the assistant's index is being built"}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    @routes.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return routes
