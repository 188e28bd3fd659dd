"""Rules: list, create, replace, delete, enable and disable them, import a rules file, dry-run one."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from ecrm_interaction.api.deps import Marketer, PolicyDep, SessionDep, Viewer
from ecrm_interaction.api.errors import invalid
from ecrm_interaction.api.services import rule_figures
from ecrm_interaction.api.services.changes import changed_fields
from ecrm_interaction.api.services.dry_runs import dry_run_now
from ecrm_interaction.api.services.ttl_cache import TtlCache
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.engine.rules import RuleSpec
from ecrm_interaction.engine.rules_file import parse_rules
from ecrm_interaction.storage import audit, rules
from ecrm_interaction.storage.store import aware
from ecrm_schemas.profile import TriggerEvent

log = structlog.get_logger()

ENGAGEMENT_CACHE_S = 30.0
"""How long the rules' engagement (a ClickHouse aggregate over the period's email and order
events, about a second on 10 million events) is reused, with the period it was counted over."""


class DryRunIn(BaseModel):
    customer_id: str = Field(min_length=1)
    event: TriggerEvent | None = None
    """The event to try the trigger with (for event rules)."""


def router() -> APIRouter:
    routes = APIRouter(tags=["rules"])
    engagements = TtlCache(ENGAGEMENT_CACHE_S, max_items=400)

    @routes.get("/v1/rules")
    def list_rules(_who: Viewer, session: SessionDep) -> list[RuleSpec]:
        """Every rule, enabled or not."""
        return rules.all_rules(session)

    @routes.get("/v1/rules/figures")
    async def figures(
        _who: Viewer, session: SessionDep, request: Request, days: Annotated[int, Query(ge=1, le=366)] = 30
    ) -> dict[str, Any]:
        """Each rule's figures over the last ``days``: how often it fired (``triggered``), emails
        ``sent``, messages ``suppressed`` by the contact policy and firings ``skipped``, each by
        reason; and from ClickHouse the messages ``opened`` and ``clicked`` and the orders they
        ``converted`` with their ``revenue`` (last click within 7 days). Those four are null
        when ClickHouse is not configured or does not answer (``engagement`` says which)."""
        since = rule_figures.period_start(days)
        warehouse: Warehouse | None = request.app.state.warehouse
        engaged, engagement = None, "clickhouse_unavailable"
        cached = engagements.get(str(days)) if warehouse is not None else None
        if cached is not None:  # counted at most ENGAGEMENT_CACHE_S ago: over its own period
            (since, engaged), engagement = cached, "clickhouse"
        elif warehouse is not None:
            try:
                engaged, engagement = await rule_figures.engagement(warehouse, since), "clickhouse"
                engagements.put(str(days), (since, engaged))
            except Exception as exc:  # the relational figures are still worth showing
                log.warning("rule_figures_unavailable", error=type(exc).__name__, detail=str(exc)[:500])
                engagement = "clickhouse_error"
        listed = await asyncio.to_thread(rules.all_rules, session)
        rows = await asyncio.to_thread(rule_figures.figures, session, listed, since, engaged)
        return {"since": since, "days": days, "engagement": engagement, "rules": rows}

    @routes.post("/v1/rules", status_code=201)
    def create_rule(rule: RuleSpec, who: Marketer, session: SessionDep) -> RuleSpec:
        if rules.rule(session, rule.id) is not None:
            raise HTTPException(409, "rule_exists")
        try:
            rules.upsert_rules(session, [], [rule], who.name)
        except ValueError as exc:
            raise invalid(exc) from exc
        return rule

    @routes.get("/v1/rules/{rule_id}")
    def get_rule(rule_id: str, _who: Viewer, session: SessionDep) -> RuleSpec:
        rule = rules.rule(session, rule_id)
        if rule is None:
            raise HTTPException(404, "rule_not_found")
        return rule

    @routes.get("/v1/rules/{rule_id}/history")
    def rule_history(
        rule_id: str, _who: Viewer, session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> list[dict[str, Any]]:
        """The rule's changes from the audit log, newest first: who, when, what (``upsert``,
        ``enable``, ``disable``, ``delete``), the rule before and after, and each field changed.
        Changes recorded before the log kept before/after have ``before``/``after`` null."""
        entries = []
        for entry in audit.of_entity(session, "rule", rule_id, limit):
            detail = orjson.loads(entry.detail)
            before, after = detail.get("before"), detail.get("after")
            known = "after" in detail
            entries.append(
                {
                    "at": aware(entry.at),
                    "actor": entry.actor,
                    "action": entry.action,
                    "before": before,
                    "after": after,
                    "changes": changed_fields(before, after) if known else [],
                }
            )
        if not entries and rules.rule(session, rule_id) is None:
            raise HTTPException(404, "rule_not_found")
        return entries

    @routes.put("/v1/rules/{rule_id}")
    def put_rule(rule_id: str, rule: RuleSpec, who: Marketer, session: SessionDep) -> RuleSpec:
        """Create or replace a rule."""
        if rule.id != rule_id:
            raise HTTPException(422, "the rule's id must be the one in the path")
        try:
            rules.upsert_rules(session, [], [rule], who.name)
        except ValueError as exc:
            raise invalid(exc) from exc
        return rule

    @routes.delete("/v1/rules/{rule_id}", status_code=204)
    def delete_rule(rule_id: str, who: Marketer, session: SessionDep) -> Response:
        """Delete a rule; its actions not carried out yet are cancelled."""
        if not rules.delete_rule(session, rule_id, who.name):
            raise HTTPException(404, "rule_not_found")
        return Response(status_code=204)

    @routes.post("/v1/rules/{rule_id}/enable")
    def enable_rule(rule_id: str, who: Marketer, session: SessionDep) -> RuleSpec:
        return _switch(session, rule_id, True, who.name)

    @routes.post("/v1/rules/{rule_id}/disable")
    def disable_rule(rule_id: str, who: Marketer, session: SessionDep) -> RuleSpec:
        """Disable a rule; its actions not carried out yet are cancelled."""
        return _switch(session, rule_id, False, who.name)

    @routes.post("/v1/rules/import")
    def import_rules(
        who: Marketer, session: SessionDep, body: Annotated[str, Body(media_type="application/yaml")]
    ) -> dict[str, int]:
        """Create or update the templates, rules and loyalty program of a YAML rules file."""
        try:
            parsed = parse_rules(body)
            rules.upsert_rules(session, parsed.templates, parsed.rules, who.name)
        except ValidationError as exc:  # each error named (field in the file, rule), like a JSON body's
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
        except ValueError as exc:
            raise invalid(exc) from exc
        except Exception as exc:  # YAML syntax
            raise HTTPException(422, f"not a rules file: {exc}"[:2000]) from exc
        if parsed.loyalty is not None:
            rules.set_loyalty_program(session, parsed.loyalty, who.name)
        return {"templates": len(parsed.templates), "rules": len(parsed.rules)}

    @routes.post("/v1/rules/{rule_id}/dry-run")
    def dry_run_rule(
        rule_id: str, request: DryRunIn, _who: Viewer, session: SessionDep, policy: PolicyDep
    ) -> dict[str, Any]:
        """What the rule would do for the customer now (with ``event`` as its trigger), and why."""
        rule = rules.rule(session, rule_id)
        if rule is None:
            raise HTTPException(404, "rule_not_found")
        return dry_run_now(session, rule, request.customer_id, request.event, policy)

    return routes


def _switch(session: SessionDep, rule_id: str, enabled: bool, actor: str) -> RuleSpec:
    rule = rules.set_enabled(session, rule_id, enabled, actor)
    if rule is None:
        raise HTTPException(404, "rule_not_found")
    return rule
