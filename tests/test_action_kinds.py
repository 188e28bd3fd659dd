"""Drift guard: the action kinds agree everywhere they are listed.

:class:`ecrm_schemas.actions.ActionKind` owns the list. The rule action union
(``engine/rules.py``), the executor registry (``delivery/actions/__init__.py``) and the catalog's
decision events must follow it, and every event the outbox relay builds for a kind must pass the
catalog (a refused one would stay unpublished: the relay logs it on every batch).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import orjson
import pytest

from ecrm_interaction.delivery.actions import REGISTRY
from ecrm_interaction.delivery.outbox_relay import decision_event, identity, track_event
from ecrm_interaction.engine.rules import Action as RuleAction
from ecrm_interaction.storage.models import Action
from ecrm_schemas import catalog
from ecrm_schemas.actions import FINAL, OPEN, ActionKind, ActionStatus
from ecrm_schemas.validation import InvalidEvent, validate_event

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _rule_specs() -> dict[Any, type]:
    union = get_args(RuleAction)[0]
    return {spec.model_fields["kind"].default: spec for spec in get_args(union)}


def test_every_action_kind_has_a_rule_spec_and_every_rule_spec_a_kind() -> None:
    specs = _rule_specs()
    missing = [kind.value for kind in ActionKind if kind not in specs]
    unknown = [str(kind) for kind in specs if kind not in set(ActionKind)]
    assert not missing, (
        f"ActionKind has {missing} but the rule action union has no spec for them: in "
        "services/interaction/ecrm_interaction/engine/rules.py add a model with `kind: Literal[ActionKind.<KIND>]` "
        "and join it to `Action`"
    )
    assert not unknown, (
        f"the rule action union has kinds {unknown} that ActionKind lacks: add them to "
        "schemas/ecrm_schemas/actions.py (ActionKind) and use `Literal[ActionKind.<KIND>]` as the discriminator"
    )
    not_enum = [spec.__name__ for kind, spec in specs.items() if not isinstance(kind, ActionKind)]
    assert not not_enum, f"{not_enum}: the `kind` discriminator must be `Literal[ActionKind.<KIND>]`, not a string"


def test_every_action_kind_has_an_executor_for_its_rule_spec() -> None:
    missing = [kind.value for kind in ActionKind if kind not in REGISTRY]
    assert not missing, (
        f"no executor for {missing}: add services/interaction/ecrm_interaction/delivery/actions/<kind>.py "
        "(an ActionExecutor: kind, spec, channel, build, execute, completed) and register it in REGISTRY in "
        "delivery/actions/__init__.py"
    )
    specs = _rule_specs()
    wrong = {
        kind.value: (executor.kind.value, executor.spec.__name__, getattr(specs.get(kind), "__name__", None))
        for kind, executor in REGISTRY.items()
        if executor.kind != kind or executor.spec is not specs.get(kind)
    }
    assert not wrong, f"executors registered under the wrong kind or spec (kind, spec, the rule union's spec): {wrong}"


def test_the_catalogs_decision_events_take_the_kind_from_the_enum() -> None:
    for model in (catalog.MessageSuppressed, catalog.MessageDeferred, catalog.MessageFailed, catalog.ActionCompleted):
        assert model.model_fields["action"].annotation is ActionKind, (
            f"{model.__name__}.action must be ActionKind (schemas/ecrm_schemas/actions.py), not its own list"
        )


def test_every_status_is_open_or_final() -> None:
    assert set(OPEN) | set(FINAL) == set(ActionStatus), (
        "a status must be in OPEN or FINAL (schemas/ecrm_schemas/actions.py)"
    )


def _action(kind: ActionKind, status: ActionStatus) -> Action:
    return Action(
        id="a1", dedup_key="k", rule_id="r", customer_id="u1", kind=kind.value, category="marketing", cause="m:x",
        status=status.value, reason="why", due_at=NOW, payload=orjson.dumps({"action": {"kind": kind.value}}).decode(),
        recipient="ada@example.com" if kind == ActionKind.EMAIL else "x", subject="s", attempts=1,
        created_at=NOW, updated_at=NOW, done_at=NOW,
    )  # fmt: skip


def _outcomes(kind: ActionKind) -> list[ActionStatus]:
    statuses = [s for s in FINAL if s not in (ActionStatus.SENT, ActionStatus.DONE)]
    return [*statuses, ActionStatus.SENT if kind == ActionKind.EMAIL else ActionStatus.DONE]


@pytest.mark.parametrize("kind", list(ActionKind), ids=str)
def test_every_decision_the_relay_reports_passes_the_catalog(kind: ActionKind) -> None:
    for status in _outcomes(kind):
        name, customer_id, message_id, properties, at = decision_event(_action(kind, status))
        event = track_event(name, identity({}, customer_id), message_id, properties, at)
        try:
            validate_event(event)
        except InvalidEvent as exc:
            pytest.fail(
                f"the outbox relay reports a {kind.value} action {status.value} as {name!r}, which the catalog "
                f"refuses ({exc}): add {name!r} (or the property) to schemas/ecrm_schemas/catalog.py, or fix "
                f"{REGISTRY[kind].__name__}.completed in delivery/actions/"
            )
        assert name in catalog.CATALOG, (
            f"{name!r} (a {kind.value} action {status.value}) is not in schemas/ecrm_schemas/catalog.py's CATALOG"
        )
