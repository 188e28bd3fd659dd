"""Probes and metrics for operators."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ecrm_collector import metrics
from ecrm_collector.gateway import Gateway


def router(gateway: Gateway, suppressions_read: threading.Event | None = None) -> APIRouter:
    routes = APIRouter(tags=["operations"])
    producer = gateway.producer

    @routes.get("/livez")
    async def livez() -> dict[str, str]:
        """The process is up (stays up while the broker is down)."""
        return {"status": "ok"}

    @routes.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready when the broker answers and the suppression list is read; 503 while not (take
        the collector out of rotation)."""
        if suppressions_read is not None and not suppressions_read.is_set():
            return JSONResponse({"status": "unready", "reason": "reading the suppression list"}, status_code=503)
        if await asyncio.to_thread(producer.broker_reachable, 2.0):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unready", "reason": "broker unreachable"}, status_code=503)

    @routes.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        metrics.PRODUCER_QUEUE.set(producer.queue_length())
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return routes
