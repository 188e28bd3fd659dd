"""The interaction service's HTTP shell: the marketers' and support staff's REST API, the
customers' unsubscribe pages, health and metrics.

The Kafka worker and the dispatcher run inside the same process, started and stopped with
the app. Every answer other than 2xx is JSON ``{"error": {"code", "message", "errors"}}``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures, whose
# role dependencies (Viewer, Marketer, Admin) are built inside create_app.
import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecrm_interaction.api.auth import Principal, authenticator
from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
from ecrm_interaction.consumer.worker import InteractionWorker
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.conditions import Facts
from ecrm_interaction.engine.contact_policy import Contact, History, address_digest
from ecrm_interaction.engine.dry_run import dry_run, history_window
from ecrm_interaction.engine.loyalty import next_tier, tier_of
from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec, TemplateSpec
from ecrm_interaction.engine.rules_file import parse_rules
from ecrm_interaction.engine.unsubscribe import InvalidUnsubscribeToken, unsubscribe_customer, verify_unsubscribe
from ecrm_interaction.privacy.requests import PrivacyRequests
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage.models import Action, Case, CaseNote, SkippedDecision
from ecrm_interaction.storage.store import Store, aware
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.profile import TriggerEvent
from ecrm_schemas.segments import SegmentDefinition, explain
from ecrm_schemas.suppressions import identity_digest
from ecrm_schemas.topics import SEGMENT_DEFINITIONS

Recommender = Callable[[str, int], list[dict[str, Any]]]


class ActionView(BaseModel):
    id: str
    rule_id: str | None
    customer_id: str
    kind: str
    category: str
    cause: str
    status: str
    reason: str | None
    due_at: datetime
    recipient: str | None
    subject: str | None
    attempts: int
    created_at: datetime
    done_at: datetime | None

    @classmethod
    def of(cls, action: Action) -> "ActionView":
        view = cls.model_validate(action, from_attributes=True)
        return view.model_copy(update={k: aware(getattr(view, k)) for k in ("due_at", "created_at", "done_at")})


class DecisionView(BaseModel):
    """A decision: an action a rule planned, with its outcome and reason, or a firing that did
    nothing (``status: skipped``, no ``kind``; ``count`` times for this rule, customer and reason,
    the latest at ``done_at``)."""

    id: str
    rule_id: str | None
    customer_id: str
    kind: str | None
    category: str | None
    cause: str
    status: str
    reason: str | None
    detail: str | None = None
    """For skips: the reason in words (which condition failed, how old the event was)."""
    due_at: datetime | None
    recipient: str | None
    subject: str | None
    attempts: int
    count: int = 1
    created_at: datetime
    done_at: datetime | None

    @classmethod
    def of(cls, row: Action | SkippedDecision) -> "DecisionView":
        if isinstance(row, Action):
            return cls.model_validate(ActionView.of(row).model_dump())
        return cls(
            id=row.id, rule_id=row.rule_id, customer_id=row.customer_id, kind=None, category=None,
            cause=row.cause, status="skipped", reason=row.reason, detail=row.detail, due_at=None,
            recipient=None, subject=None, attempts=0, count=row.count,
            created_at=aware(row.first_at), done_at=aware(row.last_at),
        )  # type: ignore[arg-type]  # fmt: skip


DECISION_FILTERS = frozenset({"customer_id", "rule_id", "kind", "status", "reason", "limit"})


class SendView(BaseModel):
    """An email action, as ``/v1/sends`` has listed them since the first version."""

    id: str
    rule_id: str | None
    customer_id: str
    trigger_message_id: str
    status: str
    reason: str | None
    subject: str | None
    created_at: datetime
    sent_at: datetime | None


class CaseView(BaseModel):
    id: str
    customer_id: str
    subject: str
    priority: str
    status: str
    assignee: str | None
    sla_due_at: datetime
    escalated_at: datetime | None
    rule_id: str | None
    created_at: datetime
    resolved_at: datetime | None
    notes: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, case: Case, notes: list[CaseNote] | None = None) -> "CaseView":
        view = cls.model_validate(case, from_attributes=True)
        view.notes = [{"author": n.author, "text": n.text, "at": aware(n.created_at)} for n in notes or []]
        return view

    @classmethod
    def many(cls, store: Store, cases: list[Case]) -> list["CaseView"]:
        """Views of ``cases`` with their notes (one query for all the notes)."""
        notes = store.case_notes([c.id for c in cases])
        return [cls.of(c, notes[c.id]) for c in cases]


class NewCase(BaseModel):
    customer_id: str = Field(min_length=1, max_length=256)
    subject: str = Field(min_length=1, max_length=300)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    sla_hours: float = Field(default=24, gt=0, le=24 * 90)
    assignee: str | None = None


class CaseUpdate(BaseModel):
    status: Literal["open", "pending", "resolved"] | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    assignee: str | None = None


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class ConsentIn(BaseModel):
    granted: bool
    purpose: str = Field(default="marketing", min_length=1, max_length=100)


class DryRunIn(BaseModel):
    customer_id: str = Field(min_length=1)
    event: TriggerEvent | None = None
    """The event to try the trigger with (for event rules)."""


class SegmentView(SegmentDefinition):
    """A segment definition as the aggregators evaluate it, with its condition in words."""

    summary: str

    @classmethod
    def of(cls, definition: SegmentDefinition) -> "SegmentView":
        return cls(**dict(definition), summary=explain(definition.condition))


class TokenIn(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    role: Literal["viewer", "agent", "marketer", "admin"]


class SuppressionView(BaseModel):
    address_digest: str
    reason: str
    source: str
    suppressed_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None


class LiftIn(BaseModel):
    """Which suppression to lift (the address, or its digest as ``GET /v1/suppressions`` lists it) and why."""

    address: str | None = Field(default=None, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    address_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    reason: str = Field(min_length=3, max_length=500)
    """Why it may be mailed again (kept in the audit log)."""

    def digest(self) -> str:
        if self.address is not None:
            return address_digest(self.address)
        if self.address_digest is None:
            error = {"loc": ("body", "address"), "type": "missing", "msg": "give the address or its address_digest"}
            raise RequestValidationError([error])
        return self.address_digest


class TtlCache:
    """A small time-bounded cache for the personalisation endpoint (per process)."""

    def __init__(self, ttl_s: float, max_items: int = 50_000) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any | None:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._items) >= self.max_items:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)


_CODE = re.compile(r"[a-z_]+")
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
SegmentPath = Annotated[str, FastApiPath(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def _error(status: int, code: str, message: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "errors": errors or []}}, status_code=status)


def _named_error(request: Request, status: int, code: str, message: str) -> dict[str, str]:
    """The field and rule of an error answer that names no fields of its own: the credentials
    for 401/403, the path's last parameter (the id not found, the link refused) for 400/404/409,
    the path or method of an unknown route, else ``$`` (the request as a whole)."""
    field, rule = "$", code
    presented = request.headers.get("authorization", "")
    if status == 401:
        field, rule = "Authorization", "unknown_token" if presented.lower().startswith("bearer ") else "missing"
        message = "send a valid API token as `Authorization: Bearer TOKEN`" if rule == "missing" else message
    elif status == 403:
        field, rule, message = "Authorization", "role", "this token's role may not do this"
    elif status == 405:
        field = "method"
    elif status in (400, 404, 409) and request.path_params:
        field = list(request.path_params)[-1]
    elif status == 404:
        field = "path"
    elif status == 422 and not _CODE.fullmatch(message):
        rule = "invalid"
    return {"field": field, "rule": rule, "message": message}


def create_app(
    settings: InteractionSettings,
    store: Store,
    worker: InteractionWorker | None,
    dispatcher: Dispatcher | None = None,
    recommender: Recommender | None = None,
    recent_events: Callable[[str, int], list[dict[str, Any]]] | None = None,
    privacy: PrivacyRequests | None = None,
    segment_definitions: SegmentDefinitions | None = None,
) -> FastAPI:
    """Build the app; with a worker and a dispatcher, they run for the app's lifetime.
    ``privacy`` (it needs ClickHouse) serves the export and erasure of a customer's data.
    ``segment_definitions``: the definitions topic as followed (default: only this app's writes)."""
    definitions = segment_definitions if segment_definitions is not None else SegmentDefinitions()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        tasks = [asyncio.create_task(w.run(stopping)) for w in (worker, dispatcher) if w is not None]
        yield
        stopping.set()
        for task in tasks:
            await task

    app = FastAPI(title="eCRM interaction", version="0.2.0", lifespan=lifespan)
    require = authenticator(store, settings.interaction_api_token.get_secret_value())
    Viewer = Annotated[Principal, Depends(require("viewer"))]
    Agent = Annotated[Principal, Depends(require("agent"))]
    Marketer = Annotated[Principal, Depends(require("marketer"))]
    Admin = Annotated[Principal, Depends(require("admin"))]
    secret = settings.tracking_secret.get_secret_value()
    policy = settings.policy()
    personalization_cache = TtlCache(ttl_s=60)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own (a body that is not UTF-8) too
    async def _json_errors(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):  # raised with its own fields (``invalid``)
            response = _error(exc.status_code, exc.detail["code"], exc.detail["message"], exc.detail["errors"])
            response.headers.update(exc.headers or {})
            return response
        detail = str(exc.detail)
        code = detail if _CODE.fullmatch(detail) else _HTTP_CODES.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, detail, [_named_error(request, exc.status_code, code, detail)])
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "$", "rule": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]
        return _error(422, "invalid_request", "the request does not validate", errors)

    def invalid(exc: ValidationError | ValueError) -> HTTPException:
        """422 naming each failed field (dotted path) and rule of a model that did not validate."""
        if isinstance(exc, ValidationError):
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]) or "$", "rule": e["type"], "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
        else:
            errors = [{"field": "$", "rule": "invalid", "message": str(exc)[:2000]}]
        return HTTPException(422, {"code": "invalid_request", "message": str(exc)[:2000], "errors": errors})

    # --- rules and templates ----------------------------------------------------------

    @app.get("/v1/rules", tags=["rules"])
    async def list_rules(_who: Viewer) -> list[RuleSpec]:
        """Every rule, enabled or not."""
        return await asyncio.to_thread(store.all_rules)

    @app.post("/v1/rules", status_code=201, tags=["rules"])
    async def create_rule(rule: RuleSpec, who: Marketer) -> RuleSpec:
        if await asyncio.to_thread(store.rule, rule.id) is not None:
            raise HTTPException(409, "rule_exists")
        try:
            await asyncio.to_thread(store.upsert_rules, [], [rule], who.name)
        except ValueError as exc:
            raise invalid(exc) from exc
        return rule

    @app.get("/v1/rules/{rule_id}", tags=["rules"])
    async def get_rule(rule_id: str, _who: Viewer) -> RuleSpec:
        rule = await asyncio.to_thread(store.rule, rule_id)
        if rule is None:
            raise HTTPException(404, "rule_not_found")
        return rule

    @app.put("/v1/rules/{rule_id}", tags=["rules"])
    async def put_rule(rule_id: str, rule: RuleSpec, who: Marketer) -> RuleSpec:
        """Create or replace a rule."""
        if rule.id != rule_id:
            raise HTTPException(422, "the rule's id must be the one in the path")
        try:
            await asyncio.to_thread(store.upsert_rules, [], [rule], who.name)
        except ValueError as exc:
            raise invalid(exc) from exc
        return rule

    @app.delete("/v1/rules/{rule_id}", status_code=204, tags=["rules"])
    async def delete_rule(rule_id: str, who: Marketer) -> Response:
        if not await asyncio.to_thread(store.delete_rule, rule_id, who.name):
            raise HTTPException(404, "rule_not_found")
        return Response(status_code=204)

    @app.post("/v1/rules/{rule_id}/enable", tags=["rules"])
    async def enable_rule(rule_id: str, who: Marketer) -> RuleSpec:
        return await _switch(rule_id, True, who)

    @app.post("/v1/rules/{rule_id}/disable", tags=["rules"])
    async def disable_rule(rule_id: str, who: Marketer) -> RuleSpec:
        return await _switch(rule_id, False, who)

    async def _switch(rule_id: str, enabled: bool, who: Principal) -> RuleSpec:
        rule = await asyncio.to_thread(store.set_enabled, rule_id, enabled, who.name)
        if rule is None:
            raise HTTPException(404, "rule_not_found")
        return rule

    @app.post("/v1/rules/import", tags=["rules"])
    async def import_rules(who: Marketer, body: Annotated[str, Body(media_type="application/yaml")]) -> dict[str, int]:
        """Create or update the templates, rules and loyalty program of a YAML rules file."""
        try:
            parsed = parse_rules(body)
            await asyncio.to_thread(store.upsert_rules, parsed.templates, parsed.rules, who.name)
        except ValidationError as exc:  # each error named (field in the file, rule), like a JSON body's
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
        except ValueError as exc:
            raise invalid(exc) from exc
        except Exception as exc:  # YAML syntax
            raise HTTPException(422, f"not a rules file: {exc}"[:2000]) from exc
        if parsed.loyalty is not None:
            await asyncio.to_thread(store.set_loyalty_program, parsed.loyalty, who.name)
        return {"templates": len(parsed.templates), "rules": len(parsed.rules)}

    @app.post("/v1/rules/{rule_id}/dry-run", tags=["rules"])
    async def dry_run_rule(rule_id: str, request: DryRunIn, _who: Viewer) -> dict[str, Any]:
        """What the rule would do for the customer now (with ``event`` as its trigger), and why."""
        rule = await asyncio.to_thread(store.rule, rule_id)
        if rule is None:
            raise HTTPException(404, "rule_not_found")
        return await asyncio.to_thread(_dry_run, rule, request)

    def _dry_run(rule: RuleSpec, request: DryRunIn) -> dict[str, Any]:
        now = datetime.now(UTC)
        program = store.loyalty_program()
        with store.session() as session:
            profile, segments, consent = store.facts_of(session, request.customer_id)
            points = store.balance(session, request.customer_id)
            last = store.rule_last_acted(session, rule.id, request.customer_id)
        facts = Facts(
            profile or {"customer_id": request.customer_id},
            segments,
            consent,
            {"points": points, "tier": tier_of(points, program)},
        )
        row = store.contact(request.customer_id)
        address = row.email or (profile or {}).get("email")
        suppression = store.address_suppression(address) if address and not row.email else None
        contact = Contact(
            address,
            row.timezone,
            row.consent.get("email"),
            row.unsubscribed,
            suppression.reason if suppression is not None else row.suppressed,
        )
        sent, rule_last = store.message_history(
            request.customer_id, rule.id, now - history_window(policy, rule.cooldown)
        )
        return dry_run(
            rule,
            facts,
            contact=contact,
            history=History(sent, rule_last),
            templates=store.templates(),
            now=now,
            policy=policy,
            event=request.event,
            rule_last_at=last,
        )

    @app.get("/v1/templates", tags=["rules"])
    async def list_templates(_who: Viewer) -> list[TemplateSpec]:
        return sorted((await asyncio.to_thread(store.templates)).values(), key=lambda t: t.id)

    @app.put("/v1/templates/{template_id}", tags=["rules"])
    async def put_template(template_id: str, template: TemplateSpec, who: Marketer) -> TemplateSpec:
        if template.id != template_id:
            raise HTTPException(422, "the template's id must be the one in the path")
        await asyncio.to_thread(store.upsert_rules, [template], [], who.name)
        return template

    @app.delete("/v1/templates/{template_id}", status_code=204, tags=["rules"])
    async def delete_template(template_id: str, who: Marketer) -> Response:
        """Delete a template; 409 (naming them) while rules use it."""
        users = await asyncio.to_thread(store.delete_template, template_id, who.name)
        if users is None:
            raise HTTPException(404, "template_not_found")
        if users:
            raise HTTPException(409, f"template {template_id!r} is used by the rules {users}: change them first")
        return Response(status_code=204)

    @app.get("/v1/loyalty/program", tags=["loyalty"])
    async def get_program(_who: Viewer) -> LoyaltyProgram:
        return await asyncio.to_thread(store.loyalty_program)

    @app.put("/v1/loyalty/program", tags=["loyalty"])
    async def put_program(program: LoyaltyProgram, who: Marketer) -> LoyaltyProgram:
        await asyncio.to_thread(store.set_loyalty_program, program, who.name)
        return program

    # --- segments (published for the aggregators) -------------------------------------------

    def _publish_segment(key: str, value: bytes) -> None:
        if dispatcher is None or dispatcher.producer is None:
            raise HTTPException(503, "kafka_unavailable")
        dispatcher.producer.produce(SEGMENT_DEFINITIONS.name, value, key=key.encode())
        dispatcher.producer.flush_or_raise(10)

    @app.get("/v1/segments", tags=["segments"])
    async def list_segments(_who: Viewer) -> list[SegmentView]:
        """Every segment definition in force (the definitions topic, whoever published them)."""
        return [SegmentView.of(d) for d in definitions.all()]

    @app.get("/v1/segments/{segment_id}", tags=["segments"])
    async def get_segment(segment_id: SegmentPath, _who: Viewer) -> SegmentView:
        definition = definitions.get(segment_id)
        if definition is None:
            raise HTTPException(404, "segment_not_found")
        return SegmentView.of(definition)

    @app.put("/v1/segments/{segment_id}", tags=["segments"])
    async def put_segment(segment_id: SegmentPath, definition: SegmentDefinition, who: Marketer) -> SegmentDefinition:
        """Define or redefine a segment: running aggregators pick it up without a restart and
        report who enters and leaves it (rules can trigger on that).

        The definition is validated before it is published, as ``ecrm segments put`` does
        (:func:`ecrm_schemas.segments.parse_definition`): every ``trait`` must be a field the
        profile has and every value of that field's kind, else 422 naming the field and rule."""
        if definition.id != segment_id:
            raise HTTPException(422, "the segment's id must be the one in the path")
        await asyncio.to_thread(_publish_segment, segment_id, definition.encode())
        definitions.put(definition)
        await asyncio.to_thread(
            store.audit,
            who.name,
            "upsert",
            "segment",
            segment_id,
            {"name": definition.name, "condition": explain(definition.condition)},
        )
        return definition

    @app.delete("/v1/segments/{segment_id}", status_code=204, tags=["segments"])
    async def delete_segment(segment_id: SegmentPath, who: Marketer) -> Response:
        await asyncio.to_thread(_publish_segment, segment_id, b"")
        definitions.delete(segment_id)
        await asyncio.to_thread(store.audit, who.name, "delete", "segment", segment_id, {})
        return Response(status_code=204)

    # --- decisions ---------------------------------------------------------------------

    @app.get("/v1/decisions", tags=["decisions"])
    async def list_decisions(
        request: Request,
        _who: Viewer,
        customer_id: str | None = None,
        rule_id: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        reason: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DecisionView]:
        """Every decision, newest first: the actions rules planned with their outcome and reason,
        and the firings skipped (``status=skipped``: cooldown, conditions not met, an event too
        old or superseded). Filters: ``customer_id``, ``rule_id``, ``kind`` (an action's kind),
        ``status`` (the outcome: ``waiting``, ``pending``, ``sent``, ``suppressed``,
        ``cancelled``, ``skipped``…), ``reason`` (a prefix: ``frequency_cap``); another
        parameter is refused."""
        unknown = sorted(set(request.query_params) - DECISION_FILTERS)
        if unknown:
            errors = [{"field": name, "rule": "unknown_filter", "message": f"{name!r} is not a filter of decisions; "
                       f"use {', '.join(sorted(DECISION_FILTERS))}"} for name in unknown]  # fmt: skip
            return _error(422, "invalid_request", "unknown query parameters", errors)  # type: ignore[return-value]
        rows = await asyncio.to_thread(
            lambda: store.decisions(
                customer_id=customer_id, rule_id=rule_id, kind=kind, status=status, reason=reason, limit=limit
            )
        )
        return [DecisionView.of(row) for row in rows]

    @app.get("/v1/sends", tags=["decisions"])
    async def list_sends(_who: Viewer, customer_id: str | None = None, limit: int = 100) -> list[SendView]:
        """The email decisions, optionally for one customer."""
        rows = await asyncio.to_thread(store.actions, customer_id, "email", None, min(max(limit, 1), 1000))
        return [
            SendView(
                id=a.id,
                rule_id=a.rule_id,
                customer_id=a.customer_id,
                trigger_message_id=a.cause.partition(":")[2],
                status=a.status,
                reason=a.reason,
                subject=a.subject,
                created_at=aware(a.created_at),  # type: ignore[arg-type]
                sent_at=aware(a.done_at) if a.status == "sent" else None,
            )
            for a in rows
        ]

    # --- customers -----------------------------------------------------------------------

    def _loyalty(customer_id: str) -> dict[str, Any]:
        program = store.loyalty_program()
        balance, entries, rewards = store.loyalty_view(customer_id)
        return {
            "points": balance,
            "tier": tier_of(balance, program),
            "next": next_tier(balance, program),
            "history": [
                {"points": e.points, "reason": e.reason, "rule_id": e.rule_id, "at": aware(e.at)} for e in entries
            ],
            "rewards": [{"reward": r.reward, "code": r.code, "issued_at": aware(r.issued_at)} for r in rewards],
        }

    def _customer_view(customer_id: str) -> dict[str, Any] | None:
        row = store.customer(customer_id)
        profile = orjson.loads(row.profile) if row is not None and row.profile else None
        actions = store.actions(customer_id=customer_id, limit=200)
        cases = store.cases(customer_id=customer_id)
        if row is None and not actions and not cases:
            return None
        messages = [ActionView.of(a).model_dump(mode="json") for a in actions if a.kind == "email"]
        suppression = store.address_suppression(row.email if row else None)
        view: dict[str, Any] = {
            "customer_id": customer_id,
            "identity": {k: (profile or {}).get(k) for k in ("user_id", "anonymous_id", "email", "merged_into")},
            "profile": profile,
            "scores": (profile or {}).get("computed"),
            "segments": [
                {"segment_id": s.segment_id, "name": s.segment_name, "since": aware(s.since)}
                for s in store.customer_segments(customer_id)
            ],
            "contact": {
                "email": row.email if row else None,
                "timezone": row.timezone if row else None,
                "unsubscribed_at": aware(row.unsubscribed_at) if row else None,
                "suppressed": suppression.reason if suppression else None,
                "suppression": (
                    SuppressionView.model_validate(suppression, from_attributes=True).model_dump(mode="json")
                    if suppression
                    else None
                ),
                "consent": {
                    c.channel: {
                        "granted": c.granted,
                        "purpose": c.purpose,
                        "source": c.source,
                        "at": aware(c.updated_at),
                    }
                    for c in store.consents(customer_id)
                    if c.purpose == "marketing"
                },
                "consents": [
                    {
                        "channel": c.channel,
                        "purpose": c.purpose,
                        "granted": c.granted,
                        "source": c.source,
                        "at": aware(c.updated_at),
                    }
                    for c in store.consents(customer_id)
                ],
            },
            "messages": {
                "sent": [m for m in messages if m["status"] == "sent"],
                "suppressed": [m for m in messages if m["status"] in ("suppressed", "cancelled")],
                "pending": [m for m in messages if m["status"] in ("pending", "waiting", "deferred")],
                "failed": [m for m in messages if m["status"] == "failed"],
            },
            "actions": [ActionView.of(a).model_dump(mode="json") for a in actions if a.kind != "email"],
            "cases": [c.model_dump(mode="json") for c in CaseView.many(store, cases)],
            "loyalty": _loyalty(customer_id),
        }
        if recent_events is not None:
            try:
                view["recent_events"] = recent_events(customer_id, 20)
            except Exception as exc:  # ClickHouse away: the rest of the view still answers
                view["recent_events"] = {"error": type(exc).__name__}
        return view

    @app.get("/v1/customers/{customer_id}", tags=["customers"])
    async def customer_360(customer_id: str, _who: Viewer) -> dict[str, Any]:
        """Identity, traits and scores, segments, recent events, messages sent and suppressed,
        cases and loyalty: one call for sales and support staff."""
        view = await asyncio.to_thread(_customer_view, customer_id)
        if view is None:
            raise HTTPException(404, "customer_not_found")
        return view

    def _privacy() -> PrivacyRequests:
        if privacy is None:
            raise HTTPException(503, "privacy requests need ClickHouse: set CLICKHOUSE_URL")
        return privacy

    @app.get("/v1/customers/{customer_id}/export", tags=["privacy"])
    async def export_customer(customer_id: str, who: Admin) -> dict[str, Any]:
        """Everything stored about the customer (GDPR access, CCPA right to know): every
        ClickHouse and relational row of their user id and anonymous ids. Admins only."""
        document = await asyncio.to_thread(_privacy().export, customer_id)
        if document is None:
            raise HTTPException(404, "customer_not_found")
        store.audit(who.name, "export", "customer", identity_digest(document["customer_id"])[:16], {})
        return document

    @app.delete("/v1/customers/{customer_id}", tags=["privacy"])
    async def erase_customer(customer_id: str, who: Admin) -> dict[str, Any]:
        """Erase the customer (GDPR erasure, CCPA deletion): every row of their ids in ClickHouse
        and the relational store, and their ids suppressed so that later events are dropped.
        Answers what was removed and what is left (zero everywhere when complete). Admins only."""
        report = await asyncio.to_thread(_privacy().erase, customer_id, who.name)
        return report.as_dict()

    @app.get("/v1/customers/{customer_id}/loyalty", tags=["loyalty"])
    async def customer_loyalty(customer_id: str, _who: Viewer) -> dict[str, Any]:
        return await asyncio.to_thread(_loyalty, customer_id)

    @app.put("/v1/customers/{customer_id}/consent/{channel}", tags=["customers"])
    async def put_consent(
        customer_id: str, channel: Literal["email", "sms", "push", "webhook"], consent: ConsentIn, who: Marketer
    ) -> dict[str, Any]:
        now = datetime.now(UTC)

        def write() -> None:
            with store.sessions.begin() as session:
                store.set_consent(
                    session, customer_id, channel, consent.granted, consent.purpose, f"api:{who.name}", now
                )
            store.audit(who.name, "consent", "customer", customer_id, {"channel": channel, **consent.model_dump()})

        await asyncio.to_thread(write)
        return {"customer_id": customer_id, "channel": channel, **consent.model_dump()}

    def _recommend(customer_id: str, limit: int) -> list[dict[str, Any]]:
        if recommender is None:
            raise HTTPException(503, "recommendations_unavailable")
        return recommender(customer_id, limit)

    @app.get("/v1/customers/{customer_id}/recommendations", tags=["customers"])
    async def recommendations(customer_id: str, _who: Viewer, limit: int = 10) -> dict[str, Any]:
        """Products for the customer: similar to what they viewed and bought, else popular ones;
        never what they bought or what is out of stock."""
        items = await asyncio.to_thread(_recommend, customer_id, min(max(limit, 1), 50))
        return {"customer_id": customer_id, "recommendations": items}

    @app.get("/v1/customers/{customer_id}/personalization", tags=["customers"])
    async def personalization(customer_id: str, _who: Viewer) -> dict[str, Any]:
        """What a web page needs to greet the customer: highlights, segments, recommendations
        (cached for a minute per customer, for page renders)."""
        cached = personalization_cache.get(customer_id)
        if cached is not None:
            return cached  # type: ignore[no-any-return]

        def build() -> dict[str, Any]:
            row = store.customer(customer_id)
            profile = orjson.loads(row.profile) if row is not None and row.profile else {}
            computed = profile.get("computed") or {}
            traits = profile.get("traits") or {}
            loyalty = _loyalty(customer_id)
            items = recommender(customer_id, 6) if recommender is not None else []
            return {
                "customer_id": customer_id,
                "highlights": {
                    "first_name": traits.get("firstName") or traits.get("first_name"),
                    "lifecycle_stage": computed.get("lifecycle_stage"),
                    "rfm_segment": computed.get("rfm_segment"),
                    "loyalty_tier": loyalty["tier"],
                    "loyalty_points": loyalty["points"],
                    "orders": profile.get("orders", 0),
                },
                "segments": [s.segment_id for s in store.customer_segments(customer_id)],
                "recommendations": items,
            }

        value = await asyncio.to_thread(build)
        personalization_cache.put(customer_id, value)
        return value

    # --- cases -----------------------------------------------------------------------------

    @app.get("/v1/cases", tags=["cases"])
    async def list_cases(
        _who: Viewer, customer_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[CaseView]:
        """Cases, newest first, each with its notes."""
        rows = await asyncio.to_thread(store.cases, customer_id, status, min(max(limit, 1), 1000))
        return await asyncio.to_thread(CaseView.many, store, rows)

    @app.post("/v1/cases", status_code=201, tags=["cases"])
    async def create_case(new: NewCase, who: Agent) -> CaseView:
        """Open a case (reported as a ``Case Opened`` event)."""
        from datetime import timedelta

        now = datetime.now(UTC)

        def write() -> str:
            with store.sessions.begin() as session:
                case_id = store.open_case(
                    session,
                    customer_id=new.customer_id,
                    subject=new.subject,
                    priority=new.priority,
                    sla=timedelta(hours=new.sla_hours),
                    assignee=new.assignee,
                    rule_id=None,
                    dedup_key=None,
                    now=now,
                )
            assert case_id is not None
            store.audit(who.name, "create", "case", case_id, new.model_dump())
            return case_id

        case_id = await asyncio.to_thread(write)
        found = await asyncio.to_thread(store.case, case_id)
        assert found is not None
        return CaseView.of(*found)

    @app.get("/v1/cases/{case_id}", tags=["cases"])
    async def get_case(case_id: str, _who: Viewer) -> CaseView:
        found = await asyncio.to_thread(store.case, case_id)
        if found is None:
            raise HTTPException(404, "case_not_found")
        return CaseView.of(*found)

    @app.patch("/v1/cases/{case_id}", tags=["cases"])
    async def update_case(case_id: str, change: CaseUpdate, who: Agent) -> CaseView:
        """Change a case's status, priority or assignee (reported as ``Case Updated``, or
        ``Case Resolved`` when it is resolved; a change that changes nothing reports nothing)."""
        values = change.model_dump(exclude_unset=True)
        row = await asyncio.to_thread(store.update_case, case_id, who.name, datetime.now(UTC), **values)
        if row is None:
            raise HTTPException(404, "case_not_found")
        found = await asyncio.to_thread(store.case, case_id)
        assert found is not None
        return CaseView.of(*found)

    @app.post("/v1/cases/{case_id}/notes", status_code=201, tags=["cases"])
    async def add_note(case_id: str, note: NoteIn, who: Agent) -> CaseView:
        if await asyncio.to_thread(store.add_case_note, case_id, who.name, note.text, datetime.now(UTC)) is None:
            raise HTTPException(404, "case_not_found")
        found = await asyncio.to_thread(store.case, case_id)
        assert found is not None
        return CaseView.of(*found)

    # --- address suppressions ---------------------------------------------------------------

    @app.get("/v1/suppressions", tags=["admin"])
    async def list_suppressions(_who: Viewer, limit: int = 100) -> list[SuppressionView]:
        """Addresses in force suppressed (hard bounces, complaints), by digest, newest first."""
        rows = await asyncio.to_thread(store.suppressions, min(max(limit, 1), 1000))
        return [SuppressionView.model_validate(r, from_attributes=True) for r in rows]

    @app.post("/v1/suppressions/lift", tags=["admin"])
    async def lift_suppression(lift: LiftIn, who: Admin) -> SuppressionView:
        """Let an address be mailed again (the mailbox works again, a complaint was a mistake);
        audited with the reason. Admins only. The address travels in the body, not the URL, so
        that no access log keeps it."""
        row = await asyncio.to_thread(store.lift_suppression, lift.digest(), who.name, lift.reason, datetime.now(UTC))
        if row is None:
            raise HTTPException(404, "suppression_not_found")
        return SuppressionView.model_validate(row, from_attributes=True)

    # --- tokens and audit -----------------------------------------------------------------

    @app.get("/v1/tokens", tags=["admin"])
    async def list_tokens(_who: Admin) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "role": t.role, "created_at": aware(t.created_at), "revoked_at": aware(t.revoked_at)}
            for t in await asyncio.to_thread(store.tokens)
        ]

    @app.post("/v1/tokens", status_code=201, tags=["admin"])
    async def create_token(token: TokenIn, who: Admin) -> dict[str, str]:
        """The token is shown once."""
        try:
            value = await asyncio.to_thread(store.add_token, token.name, token.role, who.name)
        except Exception as exc:
            raise HTTPException(409, "token_exists") from exc
        return {"name": token.name, "role": token.role, "token": value}

    @app.delete("/v1/tokens/{name}", status_code=204, tags=["admin"])
    async def revoke_token(name: str, who: Admin) -> Response:
        if not await asyncio.to_thread(store.revoke_token, name, who.name):
            raise HTTPException(404, "token_not_found")
        return Response(status_code=204)

    @app.get("/v1/audit", tags=["admin"])
    async def audit(_who: Admin, limit: int = 100) -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(store.audit_log, min(max(limit, 1), 1000))
        return [
            {
                "at": aware(r.at),
                "actor": r.actor,
                "action": r.action,
                "entity": r.entity,
                "entity_id": r.entity_id,
                "detail": orjson.loads(r.detail),
            }
            for r in rows
        ]

    # --- unsubscribe (RFC 8058), for customers ---------------------------------------------

    def _token(value: str) -> str:
        try:
            return verify_unsubscribe(value, secret).customer_id
        except InvalidUnsubscribeToken:
            raise HTTPException(400, "invalid_unsubscribe_link") from None

    def _unsubscribe(customer_id: str) -> bool:
        return unsubscribe_customer(store, customer_id, "unsubscribe-link", datetime.now(UTC))

    @app.get("/u/{token}", response_class=HTMLResponse, tags=["unsubscribe"])
    async def unsubscribe_page(token: str) -> HTMLResponse:
        """Asks for confirmation: a link prefetcher or scanner following it unsubscribes nobody."""
        _token(token)
        return HTMLResponse(UNSUBSCRIBE_PAGE.format(action=f"/u/{token}"), headers={"Cache-Control": "no-store"})

    @app.post("/u/{token}", tags=["unsubscribe"])
    async def unsubscribe(token: str, request: Request) -> Response:
        """One-click unsubscribe (mail clients POST ``List-Unsubscribe=One-Click``; the page's
        button too). Idempotent: the second call changes nothing and answers the same."""
        customer_id = _token(token)
        changed = await asyncio.to_thread(_unsubscribe, customer_id)
        if changed and dispatcher is not None:
            await asyncio.to_thread(
                dispatcher.report,
                CatalogEvent.UNSUBSCRIBED,
                customer_id,
                f"ecrm-interaction-unsubscribe-{customer_id}",
                {"list_id": "marketing"},
            )
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(UNSUBSCRIBED_PAGE)
        return JSONResponse({"status": "unsubscribed"})

    # --- operations ----------------------------------------------------------------------

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


UNSUBSCRIBE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Unsubscribe</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>Unsubscribe from our emails?</h1>
<p>You will no longer receive marketing emails from us. Messages about your orders still reach you.</p>
<form method="post" action="{action}"><button type="submit">Unsubscribe</button></form>
</body></html>"""

UNSUBSCRIBED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">
<h1>You are unsubscribed</h1><p>We will not send you marketing emails any more.</p></body></html>"""
