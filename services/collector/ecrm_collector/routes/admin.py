"""The collector's admin routes, for the interaction service's API (the staff console): replaying
chosen entries of ``ecrm.events.dlq``. Bearer ``COLLECTOR_ADMIN_TOKEN``; without one configured
the routes answer 404.

A replay of chosen entries validates each again as ``ecrm-collector dlq replay`` does
(:func:`ecrm_collector.dead_letters.plan_replay`: the step that refused it, its sender's rules,
never a browser key's server-only or contact-state event, never an erased identity's) and sends
what passes now to ``ecrm.events`` with the message id it first had, so replaying an entry twice
folds it once. It commits no group position: a later ``dlq replay`` may send it again, and the
aggregator folds it once.
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from ecrm_collector.dead_letter_topic import read_at
from ecrm_collector.dead_letters import plan_replay
from ecrm_collector.gateway import ApiError, Gateway
from ecrm_collector.settings import CollectorSettings
from ecrm_schemas.topics import EVENTS


class Position(BaseModel):
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class ReplayIn(BaseModel):
    entries: list[Position] = Field(min_length=1, max_length=500)


class StillInvalid(BaseModel):
    partition: int
    offset: int
    errors: list[str]
    """``field: rule`` pairs that fail now."""


class ReplayOut(BaseModel):
    replayed: int
    """Entries sent to ``ecrm.events``."""
    still_invalid: list[StillInvalid]
    refused: int
    """Entries never replayed: a browser key's server-only or contact-state event, or not meant for ``ecrm.events``."""
    suppressed: int
    """Entries of erased identities: never replayed."""
    not_found: int
    """Positions the topic does not hold (any more), or records that are not dead letters."""


def router(settings: CollectorSettings, gateway: Gateway) -> APIRouter:
    routes = APIRouter(tags=["admin"], include_in_schema=False)  # not for senders: kept out of their API document

    async def admin(request: Request) -> None:
        token = settings.collector_admin_token
        if token is None:
            raise ApiError(404, "not_found", "there is no route at this path", field="path")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", "the admin token is missing or wrong", field="authorization")

    @routes.post("/admin/dead-letters/replay", dependencies=[Depends(admin)])
    async def replay(chosen: ReplayIn) -> ReplayOut:
        """Replay these entries of ``ecrm.events.dlq`` (by partition and offset)."""
        positions = [(p.partition, p.offset) for p in chosen.entries]
        entries = await asyncio.to_thread(read_at, settings.kafka_client_config(), positions)
        letters = [e.letter for e in entries if e.letter is not None]
        by_letter = {id(e.letter): e for e in entries if e.letter is not None}
        plan = plan_replay(letters, settings.collector_max_event_bytes, gateway.suppressions)
        await gateway.producer.produce_all([(EVENTS.name, r.key, r.value) for r in plan.records])
        still = [
            StillInvalid(partition=by_letter[id(letter)].partition, offset=by_letter[id(letter)].offset, errors=errors)
            for letter, errors in plan.still_invalid
        ]
        return ReplayOut(
            replayed=len(plan.records),
            still_invalid=still,
            refused=len(plan.refused) + len(plan.other_topic),
            suppressed=plan.suppressed,
            not_found=len(set(positions)) - len(letters),
        )

    return routes
