"""Rules, email templates, the loyalty program and the rules' states: what marketers change
through the API, the CLI and the rules file, and what the intake and the dispatcher read.

Functions take the session of the caller's unit of work; changes are audited in it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from ecrm_interaction.engine.planning import RULE_DELETED, RULE_DISABLED
from ecrm_interaction.engine.rules import LoyaltyProgram, RuleSpec, TemplateSpec
from ecrm_interaction.storage import audit
from ecrm_interaction.storage.actions import close_action
from ecrm_interaction.storage.models import Action, EmailTemplate, LoyaltyProgramRow, Rule, TemplateVersion
from ecrm_schemas.actions import OPEN


def upsert_rules(
    session: Session, templates: list[TemplateSpec], rules: list[RuleSpec], actor: str = "rules-file"
) -> None:
    """Create or update templates and rules by id (what is given wins); audited with what each
    was before and after. A template whose content changed gets a new version
    (:func:`template_versions`). A rule using a template that does not exist raises ValueError
    (roll the session back). A rule saved disabled cancels its actions not carried out yet."""
    template_changes = []
    for t in templates:
        before = session.get(EmailTemplate, t.id)
        was = _template_parts(before.subject, before.text_body, before.html_body) if before is not None else None
        session.merge(EmailTemplate(id=t.id, subject=t.subject, text_body=t.text, html_body=t.html))
        template_changes.append((t, was, _new_version(session, t, actor)))
    session.flush()
    known = {t for (t,) in session.execute(select(EmailTemplate.id))}
    for r in rules:
        missing = r.email_templates() - known
        if missing:
            raise ValueError(f"rule {r.id!r} uses templates that do not exist: {sorted(missing)}")
        stored = session.get(Rule, r.id)
        was = orjson.loads(stored.spec) if stored is not None else None
        session.merge(Rule(id=r.id, name=r.name, enabled=r.enabled, spec=r.model_dump_json()))
        if not r.enabled:
            cancel_rule_actions(session, r.id, RULE_DISABLED, datetime.now(UTC))
        detail = {"name": r.name, "enabled": r.enabled, "before": was, "after": r.model_dump(mode="json")}
        audit.record(session, actor, "upsert", "rule", r.id, detail)
    for t, was, version in template_changes:
        now = _template_parts(t.subject, t.text, t.html)
        audit.record(session, actor, "upsert", "template", t.id, {"version": version, "before": was, "after": now})


def _template_parts(subject: str, text: str, html: str | None) -> dict[str, str | None]:
    return {"subject": subject, "text": text, "html": html}


def _new_version(session: Session, template: TemplateSpec, actor: str) -> int | None:
    """Keep ``template`` as its next version; None (nothing kept) when it is the latest already
    (a rules file loaded again at each start adds no version)."""
    latest = session.scalars(
        select(TemplateVersion)
        .where(TemplateVersion.template_id == template.id)
        .order_by(TemplateVersion.version.desc())
        .limit(1)
    ).first()
    if latest is not None and (latest.subject, latest.text_body, latest.html_body) == (
        template.subject, template.text, template.html,
    ):  # fmt: skip
        return None
    number = latest.version + 1 if latest is not None else 1
    session.add(TemplateVersion(template_id=template.id, version=number, subject=template.subject,
                                text_body=template.text, html_body=template.html, saved_at=datetime.now(UTC),
                                saved_by=actor))  # fmt: skip
    return number


def template(session: Session, template_id: str) -> TemplateSpec | None:
    """One template (as stored: not validated again, like :func:`templates`)."""
    row = session.get(EmailTemplate, template_id)
    if row is None:
        return None
    return TemplateSpec.model_construct(id=row.id, subject=row.subject, text=row.text_body, html=row.html_body)


def template_versions(session: Session, template_id: str, limit: int = 100) -> list[TemplateVersion]:
    """A template's saved versions, newest first (at most ``limit``)."""
    return list(
        session.scalars(
            select(TemplateVersion)
            .where(TemplateVersion.template_id == template_id)
            .order_by(TemplateVersion.version.desc())
            .limit(limit)
        )
    )


def template_version(session: Session, template_id: str, version: int) -> TemplateVersion | None:
    return session.get(TemplateVersion, (template_id, version))


def template_in_force(session: Session, template_id: str, moment: datetime) -> TemplateSpec | None:
    """The template as it was at ``moment``: its newest version saved then or before, else None."""
    row = session.scalar(
        select(TemplateVersion)
        .where(TemplateVersion.template_id == template_id, TemplateVersion.saved_at <= moment)
        .order_by(TemplateVersion.version.desc())
        .limit(1)
    )
    if row is None:
        return None
    return TemplateSpec.model_construct(id=template_id, subject=row.subject, text=row.text_body, html=row.html_body)


def rule(session: Session, rule_id: str) -> RuleSpec | None:
    row = session.get(Rule, rule_id)
    return RuleSpec.model_validate_json(row.spec) if row else None


def all_rules(session: Session) -> list[RuleSpec]:
    """Every rule, enabled or not, by id."""
    return [RuleSpec.model_validate_json(r.spec) for r in session.scalars(select(Rule).order_by(Rule.id))]


def enabled_rules(session: Session) -> tuple[list[RuleSpec], dict[str, TemplateSpec]]:
    """The enabled rules by id, and every template (what the dispatcher acts on)."""
    return rules_in_force(session), templates(session)


def rules_in_force(session: Session) -> list[RuleSpec]:
    """The enabled rules by id (what the intake plans with); shared, not to be changed."""
    specs = session.scalars(select(Rule.spec).where(Rule.enabled.is_(True)).order_by(Rule.id))
    return [_parsed(spec) for spec in specs]


@lru_cache(maxsize=1024)
def _parsed(spec: str) -> RuleSpec:
    # Read for every consumer batch: a stored spec unchanged since the last batch is not parsed again.
    return RuleSpec.model_validate_json(spec)


def templates(session: Session) -> dict[str, TemplateSpec]:
    """Every template by id."""
    # Not validated again: a template stored before templates were checked must not stop
    # every other one (its sends fail with render_failed instead).
    return {
        t.id: TemplateSpec.model_construct(id=t.id, subject=t.subject, text=t.text_body, html=t.html_body)
        for t in session.scalars(select(EmailTemplate))
    }


def delete_template(session: Session, template_id: str, actor: str) -> list[str] | None:
    """Delete a template no rule uses: None when it does not exist, else the ids of the rules
    that use it (nothing deleted when there are any); audited."""
    row = session.get(EmailTemplate, template_id)
    if row is None:
        return None
    users = sorted(
        r.id
        for r in session.scalars(select(Rule))
        if template_id in RuleSpec.model_validate_json(r.spec).email_templates()
    )
    if not users:
        session.delete(row)
        audit.record(session, actor, "delete", "template", template_id, {})
    return users


def delete_rule(session: Session, rule_id: str, actor: str) -> bool:
    """Delete a rule and cancel its actions not carried out yet; False when it does not exist."""
    row = session.get(Rule, rule_id)
    if row is None:
        return False
    session.delete(row)
    cancelled = cancel_rule_actions(session, rule_id, RULE_DELETED, datetime.now(UTC))
    detail = {"cancelled": cancelled, "before": orjson.loads(row.spec), "after": None}
    audit.record(session, actor, "delete", "rule", rule_id, detail)
    return True


def set_enabled(session: Session, rule_id: str, enabled: bool, actor: str) -> RuleSpec | None:
    """Enable or disable a rule (disabling cancels its actions not carried out yet); None when it
    does not exist."""
    row = session.get(Rule, rule_id)
    if row is None:
        return None
    was = RuleSpec.model_validate_json(row.spec)
    spec = was.model_copy(update={"enabled": enabled})
    row.enabled, row.spec = enabled, spec.model_dump_json()
    detail: dict[str, object] = {"before": was.model_dump(mode="json"), "after": spec.model_dump(mode="json")}
    if not enabled:
        detail["cancelled"] = cancel_rule_actions(session, rule_id, RULE_DISABLED, datetime.now(UTC))
    audit.record(session, actor, "enable" if enabled else "disable", "rule", rule_id, detail)
    return spec


def cancel_rule_actions(session: Session, rule_id: str, reason: str, now: datetime) -> int:
    """Cancel every action of ``rule_id`` not carried out yet (waiting, pending, deferred), with
    ``reason``. Cancelled is final: enabling the rule again does not bring them back."""
    rows = session.scalars(select(Action).where(Action.rule_id == rule_id, Action.status.in_(OPEN))).all()
    for row in rows:
        close_action(row, "cancelled", reason, now)
    return len(rows)


def rule_states(session: Session) -> dict[str, bool]:
    """Every rule's id and whether it is enabled (the dispatcher checks it before acting)."""
    return {rule_id: enabled for rule_id, enabled in session.execute(select(Rule.id, Rule.enabled))}


def loyalty_program(session: Session) -> LoyaltyProgram:
    """The program in force (the default one until one is saved)."""
    spec = session.scalar(select(LoyaltyProgramRow.spec).where(LoyaltyProgramRow.id == 1))
    return _program(spec) if spec is not None else LoyaltyProgram()


@lru_cache(maxsize=16)
def _program(spec: str) -> LoyaltyProgram:
    # Read for every consumer batch, like the rules: parsed once while unchanged.
    return LoyaltyProgram.model_validate_json(spec)


def set_loyalty_program(session: Session, program: LoyaltyProgram, actor: str) -> None:
    session.merge(LoyaltyProgramRow(id=1, spec=program.model_dump_json()))
    audit.record(session, actor, "upsert", "loyalty_program", "1", program.model_dump(mode="json"))
