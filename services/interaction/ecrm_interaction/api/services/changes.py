"""What a change changed (pure): two versions of a document compared field by field, for the
history tables (a rule's before and after)."""

from __future__ import annotations

from typing import Any

import orjson

_ABSENT = object()


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1], "d": None}`` → ``{"a.b": 1, "c": [1]}`` (lists compared
    whole; a null field is one not set)."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            if inner is not None:
                flat |= _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return flat
    return {prefix or "$": value}


def _shown(value: Any) -> str | None:
    if value is _ABSENT:
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, str | None]]:
    """Each dotted field whose value differs, with its value before and after as text (None:
    absent), in the order of ``after`` then the fields removed."""
    old, new = _flat(before or {}), _flat(after or {})
    if before is None:
        old = {}
    if after is None:
        new = {}
    fields = list(new) + [name for name in old if name not in new]
    return [
        {"field": name, "before": _shown(old.get(name, _ABSENT)), "after": _shown(new.get(name, _ABSENT))}
        for name in fields
        if old.get(name, _ABSENT) != new.get(name, _ABSENT)
    ]
