"""Segment definitions, published on the definitions topic for the aggregators; their
members, sizes and entries and exits as ClickHouse holds them; a definition previewed."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as FastApiPath
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from ecrm_interaction.api.deps import Marketer, SessionDep, Viewer, WarehouseDep
from ecrm_interaction.api.services.spreadsheets import safe_cell
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.api.views import SegmentView
from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.storage import audit
from ecrm_schemas.segment_sql import preview_query
from ecrm_schemas.segments import SegmentDefinition, explain
from ecrm_schemas.topics import SEGMENT_DEFINITIONS

SegmentPath = Annotated[str, FastApiPath(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
PREVIEW_SAMPLE = 20
"""How many members a preview names."""
CSV_CHUNK = 10_000
"""Members read per query while a CSV export streams (keyset pages on customer_id)."""


class SegmentPreview(BaseModel):
    """A definition as it would be: valid (else 422 naming the field), in words, and whom it
    holds now (``members``/``sample`` None without ClickHouse: ``evaluated`` says so)."""

    summary: str
    evaluated: bool
    members: int | None = None
    sample: list[str] = []
    evaluated_at: datetime | None = None


class SegmentSize(BaseModel):
    segment_id: str
    members: int


class SegmentMember(BaseModel):
    customer_id: str
    email: str
    member_since: datetime
    reason: str


class SegmentMembers(BaseModel):
    segment_id: str
    total: int
    limit: int
    offset: int
    members: list[SegmentMember]


class SegmentDay(BaseModel):
    day: date
    entered: int
    exited: int


class SegmentChanges(BaseModel):
    segment_id: str
    days: list[SegmentDay]
    """Every day of the window, oldest first (days without a change count 0)."""


MEMBERS_PAGE = """
SELECT m.customer_id AS customer_id, m.member_since AS member_since, m.reason AS reason
FROM {db}.segment_members AS m WHERE m.segment_id = {segment:String}
ORDER BY m.customer_id LIMIT {limit:UInt32} OFFSET {offset:UInt64}
"""
MEMBERS_AFTER = """
SELECT customer_id, member_since, reason FROM {db}.segment_members
WHERE segment_id = {segment:String} AND customer_id > {after:String}
ORDER BY customer_id LIMIT {limit:UInt32}
"""
EMAILS = """
SELECT customer_id, email FROM {db}.profiles FINAL WHERE customer_id IN {ids:Array(String)}
"""


def router(dispatcher: Dispatcher | None, definitions: SegmentDefinitions) -> APIRouter:
    """``definitions``: the definitions topic as followed; ``dispatcher``'s producer publishes (503 without)."""
    routes = APIRouter(tags=["segments"])

    def publish(key: str, value: bytes) -> None:
        if dispatcher is None or dispatcher.producer is None:
            raise HTTPException(503, "kafka_unavailable")
        dispatcher.producer.produce(SEGMENT_DEFINITIONS.name, value, key=key.encode())
        dispatcher.producer.flush_or_raise(10)

    @routes.get("/v1/segments")
    async def list_segments(_who: Viewer) -> list[SegmentView]:
        """Every segment definition in force (the definitions topic, whoever published them)."""
        return [SegmentView.of(d) for d in definitions.all()]

    @routes.get("/v1/segment-sizes")
    async def segment_sizes(_who: Viewer, warehouse: WarehouseDep) -> list[SegmentSize]:
        """How many customers each segment holds now (ClickHouse's ``segment_members``). Not under
        ``/v1/segments/``: any word there could be a segment's id."""
        rows = await warehouse.query(
            "SELECT segment_id, count() AS members FROM {db}.segment_members GROUP BY segment_id ORDER BY segment_id"
        )
        return [SegmentSize(segment_id=r["segment_id"], members=int(r["members"])) for r in rows]

    @routes.post("/v1/segments/preview")
    async def preview_segment(definition: SegmentDefinition, _who: Marketer, request: Request) -> SegmentPreview:
        """A definition checked and evaluated without saving anything: 422 naming the field as
        ``PUT`` would answer, else its condition in words, how many customers it holds now and
        some of their ids, by the query the aggregator evaluates segments with
        (:func:`ecrm_schemas.segment_sql.preview_query`). Marketers (it reads every current
        profile and the events of the definition's longest window: the editor's tool). Without
        ClickHouse the definition is still checked (``evaluated`` false)."""
        summary = explain(definition.condition)
        warehouse: Warehouse | None = request.app.state.warehouse
        if warehouse is None:
            return SegmentPreview(summary=summary, evaluated=False)
        now = datetime.now(UTC)
        query = preview_query(warehouse.db, definition, PREVIEW_SAMPLE)
        try:
            rows = await warehouse.query(query.sql, {**query.parameters, "now": now})
        except DatabaseError as exc:  # the aggregator would fail the same way: say so before it is saved
            if isinstance(exc, OperationalError):  # ClickHouse not reached: not the definition's fault
                raise
            message = f"ClickHouse cannot evaluate this condition: {str(exc)[:300]}"
            errors = [{"field": "condition", "rule": "not_evaluable", "message": message}]
            raise HTTPException(422, {"code": "invalid_request", "message": message, "errors": errors}) from None
        row: dict[str, Any] = rows[0] if rows else {"member_count": 0, "sample": []}
        return SegmentPreview(
            summary=summary,
            evaluated=True,
            members=int(row["member_count"]),
            sample=list(row["sample"]),
            evaluated_at=now,
        )

    @routes.get("/v1/segments/{segment_id}/members")
    async def segment_members(
        segment_id: SegmentPath,
        _who: Viewer,
        warehouse: WarehouseDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> SegmentMembers:
        """One page of the segment's members now, by customer id, with their email, since when
        and why (``segment_members``); ``total`` counts them all."""
        known(segment_id)
        params = {"segment": segment_id, "limit": limit, "offset": offset}
        rows = await warehouse.query(MEMBERS_PAGE, params)
        total = await warehouse.query(
            "SELECT count() AS n FROM {db}.segment_members WHERE segment_id = {segment:String}", params
        )
        emails = await _emails(warehouse, [r["customer_id"] for r in rows])
        members = [SegmentMember(email=emails.get(r["customer_id"], ""), **r) for r in rows]
        total_n = int(total[0]["n"]) if total else 0
        return SegmentMembers(segment_id=segment_id, total=total_n, limit=limit, offset=offset, members=members)

    @routes.get("/v1/segments/{segment_id}/members.csv", response_class=StreamingResponse)
    async def segment_members_csv(segment_id: SegmentPath, _who: Viewer, warehouse: WarehouseDep) -> Response:
        """Every member as CSV (``customer_id,email,member_since,reason``), streamed: read
        :data:`CSV_CHUNK` members at a time, never all at once."""
        known(segment_id)

        async def lines() -> AsyncIterator[str]:
            yield "customer_id,email,member_since,reason\r\n"
            after = ""
            while True:
                params = {"segment": segment_id, "after": after, "limit": CSV_CHUNK}
                rows = await warehouse.query(MEMBERS_AFTER, params)
                if not rows:
                    return
                emails = await _emails(warehouse, [r["customer_id"] for r in rows])
                out = io.StringIO()
                writer = csv.writer(out)
                for r in rows:
                    since = r["member_since"]
                    since = since.isoformat() if isinstance(since, datetime) else str(since)
                    cells = [r["customer_id"], emails.get(r["customer_id"], ""), since, r["reason"]]
                    writer.writerow([safe_cell(c) for c in cells])
                yield out.getvalue()
                if len(rows) < CSV_CHUNK:
                    return
                after = rows[-1]["customer_id"]

        headers = {"Content-Disposition": f'attachment; filename="segment-{segment_id}-members.csv"'}
        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)

    @routes.get("/v1/segments/{segment_id}/changes")
    async def segment_changes(
        segment_id: SegmentPath,
        _who: Viewer,
        warehouse: WarehouseDep,
        days: Annotated[int, Query(ge=1, le=366)] = 30,
    ) -> SegmentChanges:
        """How many customers entered and left the segment each day (UTC) of the last ``days``
        (``segment_changes``)."""
        known(segment_id)
        today = datetime.now(UTC).date()
        first = today - timedelta(days=days - 1)
        rows = await warehouse.query(
            "SELECT toDate(at) AS day, countIf(change = 'entered') AS entered, countIf(change = 'exited') AS exited "
            "FROM {db}.segment_changes FINAL WHERE segment_id = {segment:String} AND at >= {first:Date} "
            "GROUP BY day ORDER BY day",
            {"segment": segment_id, "first": first},
        )
        counted = {r["day"]: r for r in rows}
        series = []
        for n in range(days):
            day = first + timedelta(days=n)
            row = counted.get(day, {"entered": 0, "exited": 0})
            series.append(SegmentDay(day=day, entered=int(row["entered"]), exited=int(row["exited"])))
        return SegmentChanges(segment_id=segment_id, days=series)

    def known(segment_id: str) -> None:
        if definitions.get(segment_id) is None:
            raise HTTPException(404, "segment_not_found")

    @routes.get("/v1/segments/{segment_id}")
    async def get_segment(segment_id: SegmentPath, _who: Viewer) -> SegmentView:
        definition = definitions.get(segment_id)
        if definition is None:
            raise HTTPException(404, "segment_not_found")
        return SegmentView.of(definition)

    @routes.put("/v1/segments/{segment_id}")
    def put_segment(
        segment_id: SegmentPath, definition: SegmentDefinition, who: Marketer, session: SessionDep
    ) -> SegmentDefinition:
        """Define or redefine a segment: running aggregators pick it up without a restart and
        report who enters and leaves it (rules can trigger on that).

        The definition is validated before it is published, as ``ecrm segments put`` does
        (:func:`ecrm_schemas.segments.parse_definition`): every ``trait`` must be a field the
        profile has and every value of that field's kind, else 422 naming the field and rule."""
        if definition.id != segment_id:
            raise HTTPException(422, "the segment's id must be the one in the path")
        publish(segment_id, definition.encode())
        definitions.put(definition)
        detail = {"name": definition.name, "condition": explain(definition.condition)}
        audit.record(session, who.name, "upsert", "segment", segment_id, detail)
        return definition

    @routes.delete("/v1/segments/{segment_id}", status_code=204)
    def delete_segment(segment_id: SegmentPath, who: Marketer, session: SessionDep) -> Response:
        publish(segment_id, b"")
        definitions.delete(segment_id)
        audit.record(session, who.name, "delete", "segment", segment_id, {})
        return Response(status_code=204)

    return routes


async def _emails(warehouse: Warehouse, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await warehouse.query(EMAILS, {"ids": ids})
    return {r["customer_id"]: r["email"] for r in rows}
