"""Dead letters: what the pipeline refused, by reason, with a redacted preview of each.

The dead-letter topics are read directly, with a bounded consumer (:mod:`..services.dead_letters`):
the last entries of every partition, never the whole topic; counts by reason are over those,
the number each topic holds over all. Kafka is what the dispatcher's producer reaches
(503 ``kafka_unavailable`` without one, as for publishing segment definitions).

A replay of chosen entries of ``ecrm.events.dlq`` is the collector's to make: it owns the
validation that refused them and the rules of their sender (``ecrm_collector.dead_letters``), so
this API asks its admin route (``INTERACTION_COLLECTOR_ADMIN_URL`` with ``COLLECTOR_ADMIN_TOKEN``)
and audits what it answered. Entries of the other dead-letter topics are not replayed (they
hold what this service and the aggregator refused, which no later fix changes).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from ecrm_interaction.api.deps import Admin, SessionDep, SettingsDep, Viewer
from ecrm_interaction.api.services import dead_letters
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import audit
from ecrm_schemas.topics import EVENTS_DLQ

PER_PARTITION = 200
"""Entries read from the end of each partition: what the counts by reason cover."""


class DeadLetterView(BaseModel):
    topic: str
    partition: int
    offset: int
    meant_for: str | None
    """The topic the value was meant for (where a replay sends it)."""
    reason: str
    source: str
    failed_at: datetime | None
    errors: list[dict[str, str]]
    preview: str


class DeadLetterCount(BaseModel):
    topic: str
    reason: str
    count: int


class DeadLetters(BaseModel):
    held: dict[str, int]
    """Records each dead-letter topic holds."""
    read: int
    """Entries read (the last ``PER_PARTITION`` of each partition): what ``by_reason`` counts."""
    complete: bool
    by_reason: list[DeadLetterCount]
    entries: list[DeadLetterView]


class Position(BaseModel):
    topic: str = Field(min_length=1, max_length=200)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class ReplayIn(BaseModel):
    entries: list[Position] = Field(min_length=1, max_length=500)


class StillInvalid(BaseModel):
    topic: str
    partition: int
    offset: int
    errors: list[str]


class Replayed(BaseModel):
    replayed: int
    """Entries sent on to the topic they were meant for."""
    still_invalid: list[StillInvalid]
    """Entries that fail validation again (they stay)."""
    refused: int
    """Entries never replayed (a browser key's back-end or contact-state event, another dead-letter topic)."""
    suppressed: int
    """Entries of erased identities."""
    not_found: int
    """Positions the topic does not hold."""


def _collector(request: Request, settings: InteractionSettings) -> httpx.AsyncClient:
    """The collector's admin API (``app.state.collector_admin``, else one built from the settings)."""
    client: httpx.AsyncClient | None = getattr(request.app.state, "collector_admin", None)
    if client is None:
        if not settings.interaction_collector_admin_url or settings.collector_admin_token is None:
            raise HTTPException(503, "collector_admin_not_configured")
        client = httpx.AsyncClient(base_url=settings.interaction_collector_admin_url, timeout=30.0)
        request.app.state.collector_admin = client
    return client


def view(entry: dead_letters.Entry) -> DeadLetterView:
    letter = entry.letter
    if letter is None:
        return DeadLetterView(topic=entry.topic, partition=entry.partition, offset=entry.offset, meant_for=None,
                              reason="not_a_dead_letter", source="", failed_at=None, errors=[],
                              preview="<not a dead letter>")  # fmt: skip
    return DeadLetterView(
        topic=entry.topic,
        partition=entry.partition,
        offset=entry.offset,
        meant_for=letter.topic,
        reason=letter.reason,
        source=letter.source,
        failed_at=letter.failed_at,
        errors=[{"field": e.field, "rule": e.rule, "message": e.message} for e in letter.errors],
        preview=dead_letters.preview(letter),
    )


def kafka_config(dispatcher: Dispatcher | None, settings: InteractionSettings) -> dict[str, Any]:
    if dispatcher is None or dispatcher.producer is None:
        raise HTTPException(503, "kafka_unavailable")
    return settings.kafka_client_config()


def router(dispatcher: Dispatcher | None) -> APIRouter:
    routes = APIRouter(tags=["operations"])

    @routes.get("/v1/dead-letters")
    async def list_dead_letters(
        _who: Viewer,
        settings: SettingsDep,
        reason: str | None = None,
        topic: str | None = None,
        limit: int = Query(default=50, ge=1, le=500),
    ) -> DeadLetters:
        """The newest entries (``limit``, optionally of one ``reason`` or dead-letter ``topic``) and
        the counts by reason of the last entries of each partition."""
        config = kafka_config(dispatcher, settings)
        try:
            window = await asyncio.to_thread(dead_letters.read_recent, config, PER_PARTITION)
        except dead_letters.DeadLettersUnavailable as exc:
            raise HTTPException(503, "kafka_unavailable") from exc
        chosen = [
            e for e in window.entries
            if (topic is None or e.topic == topic)
            and (reason is None or (e.letter.reason if e.letter else "not_a_dead_letter") == reason)
        ]  # fmt: skip
        return DeadLetters(
            held=window.held,
            read=len(window.entries),
            complete=window.complete,
            by_reason=[DeadLetterCount(topic=t, reason=r, count=n) for t, r, n in window.by_reason()],
            entries=[view(e) for e in chosen[:limit]],
        )

    @routes.post("/v1/dead-letters/replay")
    async def replay(
        chosen: ReplayIn, who: Admin, request: Request, settings: SettingsDep, session: SessionDep
    ) -> Replayed:
        """Validate these entries again and send on what passes now (the collector does it:
        503 ``collector_admin_not_configured``, 502 ``collector_unavailable``). Audited."""
        events = [p for p in chosen.entries if p.topic == EVENTS_DLQ.name]
        others = len(chosen.entries) - len(events)
        token = settings.collector_admin_token.get_secret_value() if settings.collector_admin_token else ""
        body = {"entries": [{"partition": p.partition, "offset": p.offset} for p in events]}
        answer: dict[str, Any] = {"replayed": 0, "still_invalid": [], "refused": 0, "suppressed": 0, "not_found": 0}
        if events:
            client = _collector(request, settings)
            try:
                called = await client.post("/admin/dead-letters/replay", json=body,
                                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            except httpx.HTTPError as exc:
                raise HTTPException(502, "collector_unavailable") from exc
            if called.status_code != 200:
                raise HTTPException(502, "collector_unavailable")
            answer = called.json()
        result = Replayed(
            replayed=answer["replayed"],
            still_invalid=[StillInvalid(topic=EVENTS_DLQ.name, **s) for s in answer["still_invalid"]],
            refused=answer["refused"] + others,
            suppressed=answer["suppressed"],
            not_found=answer["not_found"],
        )
        detail = result.model_dump(exclude={"still_invalid"}) | {
            "entries": [f"{p.topic}@{p.partition}:{p.offset}" for p in chosen.entries],
            "still_invalid": len(result.still_invalid),
        }
        audit.record(session, who.name, "dead_letters.replay", "dead_letters", EVENTS_DLQ.name, detail)
        return result

    return routes
