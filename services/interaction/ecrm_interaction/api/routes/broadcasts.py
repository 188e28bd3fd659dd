"""Broadcasts: a one-off message to a segment. Create and change a draft, preview its audience
(after the contact policy, by reason excluded), schedule, pause, resume, cancel it, and read
its results per variant with the winner and its uncertainty (engagement from ClickHouse)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as FastApiPath
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ecrm_interaction.api.deps import Marketer, PolicyDep, SessionDep, Viewer
from ecrm_interaction.api.services import broadcast_results
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
from ecrm_interaction.engine.broadcasts import Variant, place
from ecrm_interaction.engine.contact_policy import PolicySettings
from ecrm_interaction.storage import broadcasts
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.models import Broadcast

BroadcastPath = Annotated[str, FastApiPath(max_length=36)]
MAX_AHEAD = timedelta(days=366)
"""How far ahead a broadcast may be scheduled."""


def _within_reach(value: datetime) -> datetime:
    if value > datetime.now(UTC) + MAX_AHEAD:
        raise ValueError(f"a broadcast starts within {MAX_AHEAD.days} days")
    return value


StartTime = Annotated[AwareDatetime, AfterValidator(_within_reach)]
VariantName = Annotated[str, StringConstraints(pattern=r"^[A-Z]$")]


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: VariantName
    template: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    share: int = Field(ge=1, le=100, description="Percent of the messages sent (the shares add up to 100).")


class BroadcastIn(BaseModel):
    """A broadcast: one ``template_id``, or 2 to 4 ``variants`` (A/B test), never both."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    segment_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    template_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    variants: list[VariantIn] | None = Field(default=None, min_length=2, max_length=4)
    holdout_percent: int = Field(default=0, ge=0, le=50, description="Members kept unsent, to compare with.")
    winner_metric: Literal["clicks", "conversions"] = "clicks"
    rate_per_minute: int = Field(default=1000, ge=1, le=100_000)
    scheduled_at: StartTime | None = None
    """When sending starts (None: when it is scheduled)."""

    @field_validator("variants")
    @classmethod
    def _shares(cls, variants: list[VariantIn] | None) -> list[VariantIn] | None:
        if variants is None:
            return None
        if len({v.name for v in variants}) != len(variants):
            raise ValueError("each variant needs its own name")
        if sum(v.share for v in variants) != 100:
            raise ValueError(f"the variants' shares add up to {sum(v.share for v in variants)}, not 100")
        return variants


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheduled_at: StartTime | None = None
    """When sending starts (None: the broadcast's time, else now; a past time means now)."""


def refused(field: str, rule: str, message: str, status: int = 422) -> HTTPException:
    return HTTPException(status, {"code": "invalid_request", "message": message,
                                  "errors": [{"field": field, "rule": rule, "message": message}]})  # fmt: skip


def _variants(body: BroadcastIn) -> list[Variant]:
    if body.variants is not None:
        return [Variant(v.name, v.template, v.share) for v in body.variants]
    assert body.template_id is not None
    return [Variant("A", body.template_id, 100)]


def view(row: Broadcast, counts: dict[str, dict[str, int]], now: datetime) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "segment_id": row.segment_id, "template_id": row.template_id,
        "variants": orjson.loads(row.variants), "holdout_percent": row.holdout_percent,
        "winner_metric": row.winner_metric, "rate_per_minute": row.rate_per_minute,
        "scheduled_at": row.scheduled_at, "started_at": row.started_at,
        "status": broadcasts.status_of(row, counts, now), "audience": orjson.loads(row.counts or "{}") or None,
        "progress": counts, "created_by": row.created_by, "created_at": row.created_at, "updated_at": row.updated_at,
    }  # fmt: skip


async def optional_warehouse(request: Request) -> Warehouse | None:
    warehouse: Warehouse | None = request.app.state.warehouse
    return warehouse


def router(definitions: SegmentDefinitions) -> APIRouter:
    """``definitions``: the segment definitions in force (a broadcast names one of them, or a
    segment with members)."""
    routes = APIRouter(tags=["broadcasts"])

    def checked(session: SessionDep, body: BroadcastIn) -> broadcasts.Draft:
        if (body.template_id is None) == (body.variants is None):
            raise refused("template_id", "template_or_variants", "give a template_id, or variants, not both")
        if definitions.get(body.segment_id) is None and not broadcasts.segment_known(session, body.segment_id):
            raise refused("segment_id", "unknown_segment", f"there is no segment {body.segment_id!r}")
        known = set(rule_store.templates(session))
        if body.template_id is not None and body.template_id not in known:
            raise refused("template_id", "unknown_template", f"there is no template {body.template_id!r}")
        for i, v in enumerate(body.variants or []):
            if v.template not in known:
                raise refused(f"variants.{i}.template", "unknown_template", f"there is no template {v.template!r}")
        return broadcasts.Draft(body.name, body.segment_id, body.template_id, _variants(body), body.holdout_percent,
                                body.winner_metric, body.rate_per_minute, body.scheduled_at)  # fmt: skip

    def found(session: SessionDep, broadcast_id: str) -> Broadcast:
        row = broadcasts.get(session, broadcast_id)
        if row is None:
            raise HTTPException(404, "broadcast_not_found")
        return row

    def shown(session: SessionDep, row: Broadcast) -> dict[str, Any]:
        return view(row, broadcasts.progress(session, row.id), datetime.now(UTC))

    def in_status(session: SessionDep, row: Broadcast, *allowed: str) -> str:
        status = broadcasts.status_of(row, broadcasts.progress(session, row.id), datetime.now(UTC))
        if status not in allowed:
            raise refused("status", "status", f"the broadcast is {status}; this needs it {' or '.join(allowed)}", 409)
        return status

    @routes.get("/v1/broadcasts")
    def list_broadcasts(_who: Viewer, session: SessionDep) -> list[dict[str, Any]]:
        """The newest 100 broadcasts, newest first."""
        return [shown(session, row) for row in broadcasts.newest(session)]

    def counted(
        session: SessionDep, row: Broadcast, policy: PolicySettings, actor: str | None = None
    ) -> dict[str, Any]:
        """Count a draft's audience now, as if sent at its time (now if earlier), and keep it."""
        now = datetime.now(UTC)
        at = max(now, row.scheduled_at or now)
        return broadcasts.keep_count(session, row, _audience(session, row, policy, at), at, now, actor)

    @routes.post("/v1/broadcasts", status_code=201)
    def create_broadcast(body: BroadcastIn, who: Marketer, session: SessionDep, policy: PolicyDep) -> dict[str, Any]:
        """A draft, its audience counted (``audience``; ``POST .../audience`` counts it again)."""
        row = broadcasts.create(session, checked(session, body), who.name, datetime.now(UTC))
        counted(session, row, policy)
        return shown(session, row)

    @routes.get("/v1/broadcasts/{broadcast_id}")
    def get_broadcast(broadcast_id: BroadcastPath, _who: Viewer, session: SessionDep) -> dict[str, Any]:
        return shown(session, found(session, broadcast_id))

    @routes.put("/v1/broadcasts/{broadcast_id}")
    def put_broadcast(
        broadcast_id: BroadcastPath, body: BroadcastIn, who: Marketer, session: SessionDep, policy: PolicyDep
    ) -> dict[str, Any]:
        """Change a draft (409 once it is scheduled); its audience is counted again."""
        row = found(session, broadcast_id)
        in_status(session, row, "draft")
        broadcasts.change(session, row, checked(session, body), who.name)
        counted(session, row, policy)
        return shown(session, row)

    @routes.get("/v1/broadcasts/{broadcast_id}/audience")
    def audience(broadcast_id: BroadcastPath, _who: Viewer, session: SessionDep, policy: PolicyDep) -> dict[str, Any]:
        """Who it reaches: segment members, those the contact policy excludes (by reason), the
        holdout and the messages that will really go out, by variant, as if sent at
        ``computed_at``. A draft's is its latest count (``counted_at``: when it was created,
        changed or counted again with ``POST``; judging every member of a large segment takes
        seconds, more than a page may); a scheduled broadcast's is the one it was scheduled with."""
        row = found(session, broadcast_id)
        if row.status != "draft":
            return {"computed_at": row.started_at, "frozen": True, **orjson.loads(row.counts)}
        kept = orjson.loads(row.counts or "{}")
        if not kept.get("counted_at"):  # a draft saved before drafts kept their count
            now = datetime.now(UTC)
            at = max(now, row.scheduled_at or now)
            kept = {"computed_at": at, **broadcasts.counts_of(_audience(session, row, policy, at))}
        return {**kept, "frozen": False}

    @routes.post("/v1/broadcasts/{broadcast_id}/audience")
    def count_again(
        broadcast_id: BroadcastPath, who: Marketer, session: SessionDep, policy: PolicyDep
    ) -> dict[str, Any]:
        """Count a draft's audience again now (409 once it is scheduled: its audience is fixed). Audited."""
        row = found(session, broadcast_id)
        in_status(session, row, "draft")
        return {**counted(session, row, policy, who.name), "frozen": False}

    def _audience(session: SessionDep, row: Broadcast, policy: PolicySettings, at: datetime):  # type: ignore[no-untyped-def]
        window = max((cap.window for cap in policy.caps), default=at - at)
        members = broadcasts.policy_members(session, row.segment_id, at, window)
        return place(row.id, members, broadcasts.variants_of(row), row.holdout_percent, at, policy)

    @routes.post("/v1/broadcasts/{broadcast_id}/schedule")
    def schedule(
        broadcast_id: BroadcastPath, who: Marketer, session: SessionDep, policy: PolicyDep,
        body: ScheduleIn | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Fix its audience (as the preview computes it) and create its messages, due at the
        rate from the start; the contact policy is applied again as each one goes out."""
        row = found(session, broadcast_id)
        in_status(session, row, "draft")
        now = datetime.now(UTC)
        wanted = (body.scheduled_at if body is not None else None) or row.scheduled_at or now
        start = max(now, wanted)
        planned = _audience(session, row, policy, start)
        broadcasts.schedule(session, row, planned, start, who.name, now)
        return shown(session, row)

    @routes.post("/v1/broadcasts/{broadcast_id}/pause")
    def pause(broadcast_id: BroadcastPath, who: Marketer, session: SessionDep) -> dict[str, Any]:
        """Hold the messages not sent yet (those already handed to the mail server go)."""
        row = found(session, broadcast_id)
        in_status(session, row, "scheduled", "sending")
        broadcasts.pause(session, row, who.name)
        return shown(session, row)

    @routes.post("/v1/broadcasts/{broadcast_id}/resume")
    def resume(broadcast_id: BroadcastPath, who: Marketer, session: SessionDep) -> dict[str, Any]:
        """Send the held messages again, at the rate from now; none twice."""
        row = found(session, broadcast_id)
        in_status(session, row, "paused")
        broadcasts.resume(session, row, who.name, datetime.now(UTC))
        return shown(session, row)

    @routes.post("/v1/broadcasts/{broadcast_id}/cancel")
    def cancel(broadcast_id: BroadcastPath, who: Marketer, session: SessionDep) -> dict[str, Any]:
        """Cancel the messages not sent yet, for good."""
        row = found(session, broadcast_id)
        in_status(session, row, "draft", "scheduled", "sending", "paused")
        broadcasts.cancel(session, row, who.name, datetime.now(UTC))
        return shown(session, row)

    @routes.get("/v1/broadcasts/{broadcast_id}/results")
    async def results(
        broadcast_id: BroadcastPath,
        _who: Viewer,
        request: Request,
        warehouse: Annotated[Warehouse | None, Depends(optional_warehouse)],
    ) -> dict[str, Any]:
        """Per variant: sent, opened, clicked, converted (customers with an order within
        :data:`~ecrm_interaction.api.services.broadcast_results.CONVERSION_WINDOW` of the start),
        each rate with its 95 % Wilson interval; the winner on the broadcast's metric with the
        p-value of a two-proportion z-test against the runner-up; the holdout's conversion against
        the sent messages'. Without ClickHouse only the sent figures (``engagement: unavailable``)."""
        store = request.app.state.store
        row, placed = await broadcast_results.read(store, broadcast_id)
        if row is None:
            raise HTTPException(404, "broadcast_not_found")
        return await broadcast_results.results(row, placed, warehouse)

    return routes
