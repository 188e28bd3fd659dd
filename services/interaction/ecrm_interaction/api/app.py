"""The interaction service's HTTP shell: the marketers' and support staff's REST API, the
customers' unsubscribe pages, health and metrics.

``create_app`` only wires: the worker and dispatcher's lifetime, the error answers
(:mod:`ecrm_interaction.api.errors`: every answer other than 2xx is JSON ``{"error": {"code",
"message", "errors"}}``), what handlers depend on (:mod:`ecrm_interaction.api.deps`: settings,
roles, a session per request), one router per resource (:mod:`ecrm_interaction.api.routes`) and
the staff console (:mod:`ecrm_interaction.console`), which is served over that API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ecrm_interaction.api import errors
from ecrm_interaction.api.routes import (
    audit,
    broadcasts,
    cases,
    catalog,
    chat,
    consent,
    conversations,
    customers,
    dead_letters,
    decisions,
    figures,
    knowledge_base,
    loyalty,
    operations,
    pipeline,
    reports,
    rules,
    saved_reports,
    segments,
    sessions,
    sources,
    suppressions,
    templates,
    tokens,
    unsubscribe,
    users,
)
from ecrm_interaction.api.routes import (
    privacy as privacy_requests,
)
from ecrm_interaction.api.services.assistant import Assistant
from ecrm_interaction.api.services.customers import RecentEvents, Recommender
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.api.sessions import SessionSigner
from ecrm_interaction.console import app as console
from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
from ecrm_interaction.consumer.worker import InteractionWorker
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.privacy.requests import PrivacyRequests
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.store import Store


def create_app(
    settings: InteractionSettings,
    store: Store,
    worker: InteractionWorker | None,
    dispatcher: Dispatcher | None = None,
    recommender: Recommender | None = None,
    recent_events: RecentEvents | None = None,
    privacy: PrivacyRequests | None = None,
    segment_definitions: SegmentDefinitions | None = None,
    warehouse: Warehouse | None = None,
) -> FastAPI:
    """Build the app; with a worker and a dispatcher, they run for the app's lifetime.
    ``privacy`` (it needs ClickHouse) serves the export and erasure of a customer's data.
    ``segment_definitions``: the definitions topic as followed (default: only this app's writes).
    ``warehouse``: ClickHouse for the routes that read profiles, events and figures (503 without)."""
    definitions = segment_definitions if segment_definitions is not None else SegmentDefinitions()
    assistant = Assistant(settings, warehouse)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        if worker is not None and dispatcher is not None:
            worker.on_planned = dispatcher.wake  # what is planned goes out without waiting for a tick
        tasks = [asyncio.create_task(w.run(stopping)) for w in (worker, dispatcher) if w is not None]
        warming = asyncio.create_task(asyncio.to_thread(assistant.prepare, store))
        yield
        await warming
        stopping.set()
        for task in tasks:
            await task

    app = FastAPI(title="eCRM interaction", version="0.2.0", lifespan=lifespan)
    app.state.settings, app.state.store = settings, store
    app.state.session_signer = SessionSigner(settings)
    app.state.warehouse = warehouse
    app.state.assistant = assistant
    errors.install(app)
    # The chat widget runs on the shop's pages: its routes answer cross-origin requests (the
    # write key's allowed origins are then checked per request); nothing else of the API does.
    app.add_middleware(ChatCORS)
    app.include_router(rules.router())
    app.include_router(templates.router())
    app.include_router(loyalty.router())
    app.include_router(segments.router(dispatcher, definitions))
    app.include_router(figures.router(dispatcher))
    app.include_router(decisions.router())
    app.include_router(customers.router(recommender, recent_events))
    app.include_router(privacy_requests.router(privacy))
    app.include_router(consent.router())
    app.include_router(cases.router())
    app.include_router(suppressions.router())
    app.include_router(tokens.router())
    app.include_router(audit.router())
    app.include_router(unsubscribe.router(dispatcher))
    app.include_router(operations.router(worker, assistant))
    app.include_router(sessions.router())
    app.include_router(users.router())
    app.include_router(sources.router())
    app.include_router(dead_letters.router(dispatcher))
    app.include_router(catalog.router())
    app.include_router(pipeline.router())
    app.include_router(reports.router())
    app.include_router(saved_reports.router(dispatcher))

    app.include_router(broadcasts.router(definitions))
    app.include_router(chat.router(assistant))
    app.include_router(knowledge_base.router(assistant))
    app.include_router(conversations.router(assistant))
    console.install(app)
    return app


class ChatCORS:
    """CORS for ``/v1/chat*`` only (Starlette's middleware, any origin, no credentials)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Conversation-Token"],
            expose_headers=["Retry-After"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/chat"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
