"""Profile paths: how a segment, a rule's condition or a trait trigger names a customer's value.

The one grammar, derived from :class:`~ecrm_schemas.profile.CustomerProfile` and
:class:`~ecrm_schemas.profile.ComputedTraits` (a field added there is a path here)::

    <field>            a profile field: ``orders``, ``revenue``, ``last_seen``, ``nps_latest`` …
    computed.<trait>   a computed trait: ``computed.churn_risk``, ``computed.rfm_segment`` …
    <map>.<name>       a name → count map: ``event_counts.Order Completed``,
                       ``page_views_by_name.Pricing`` (0 for a name never counted)
    traits.<trait>     an identify trait: ``traits.plan`` (any JSON value)
    loyalty.<field>    the interaction service's loyalty ledger, for rules' trait triggers only:
                       ``loyalty.points``, ``loyalty.tier`` (the profile carries the same numbers
                       as ``computed.loyalty_points`` / ``computed.loyalty_tier``)

A path is validated where it enters the system (:data:`ProfilePath`, :data:`TriggerPath` in
the segment definitions' and the rules' models: the API, the CLI, rules files); an unknown
one is refused as ``unknown_profile_field`` naming the closest known path. Evaluators read a
path through :func:`parse_path`: Python with :func:`read`, the aggregator's SQL by the
:class:`PathRef`'s ``root`` and ``name``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, StringConstraints
from pydantic_core import PydanticCustomError

from ecrm_schemas.profile import ComputedTraits, CustomerProfile

FieldKind = Literal["number", "text", "time"]
PathKind = FieldKind | Literal["json"]
"""What a path's value is to a comparison (``json``: an identify trait, whatever was sent)."""
Root = Literal["field", "computed", "counts", "traits", "loyalty"]

NOT_SEGMENTABLE = frozenset({
    "traits", "computed", "positions", "version", "source_partition", "source_offset", "merged_into",
    "engagement_raw", "engagement_at", "as_of",
})  # fmt: skip
"""Profile fields no path reads: containers with their own paths, and bookkeeping."""
TRAITS, COMPUTED, LOYALTY = "traits", "computed", "loyalty"
_TRAIT_NAME = re.compile(r"[A-Za-z0-9_ .-]{1,100}")


def _kind(annotation: Any) -> FieldKind | Literal["counts"] | None:
    """What a profile field's type is to a condition: number, text, time, or a name → count map."""
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        if len(options) != 1:
            return None
        annotation = options[0]
    if get_origin(annotation) is Literal or annotation is str:
        return "text"
    if get_origin(annotation) is dict:
        return "counts" if get_args(annotation) == (str, int) else None
    if annotation in (int, float, Decimal):
        return "number"
    return "time" if annotation is datetime else None


def _fields_of(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    return {
        prefix + name: kind
        for name, info in model.model_fields.items()
        if name not in NOT_SEGMENTABLE and (kind := _kind(info.annotation)) is not None
    }


_PROFILE_KINDS = {**_fields_of(CustomerProfile), **_fields_of(ComputedTraits, f"{COMPUTED}.")}
PROFILE_FIELDS: dict[str, FieldKind] = {name: kind for name, kind in _PROFILE_KINDS.items() if kind != "counts"}
"""Every profile value a condition can compare (``orders``, ``computed.churn_risk`` …) and its
kind: the profile's fields are the one list, here, in the aggregator's folding and in ClickHouse."""
COUNT_FIELDS: frozenset[str] = frozenset(name for name, kind in _PROFILE_KINDS.items() if kind == "counts")
"""The profile's name → count maps (``event_counts``, ``page_views_by_name`` …), read as
``<map>.<name>`` (a number, 0 for a name never counted)."""
LOYALTY_FIELDS: dict[str, FieldKind] = {
    name.removeprefix(f"{COMPUTED}.loyalty_"): kind
    for name, kind in PROFILE_FIELDS.items()
    if name.startswith(f"{COMPUTED}.loyalty_")
}
"""The ledger's values a trait trigger reads as ``loyalty.<field>`` (``points``, ``tier``): the
ones the profile carries as ``computed.loyalty_<field>``."""


@dataclass(frozen=True, slots=True)
class PathRef:
    """A parsed, known path."""

    path: str
    root: Root
    name: str
    """The profile field (``orders``), computed trait (``churn_risk``), count map
    (``event_counts``) or loyalty field (``tier``); ``traits`` for an identify trait."""
    key: str | None
    """The counted name or the identify trait's name (``traits.<key>``, ``<map>.<key>``)."""
    kind: PathKind

    @property
    def reported(self) -> bool:
        """Whether a profile change names this path in ``changed`` when its value changes (a
        field or computed trait; not a value inside a container such as ``traits``)."""
        return self.root in ("field", "computed")


@lru_cache(maxsize=4096)
def parse_path(path: str, *, loyalty: bool = False) -> PathRef:
    """The path's parts and kind; ``loyalty``: whether ``loyalty.<field>`` is allowed.

    Raises ``PydanticCustomError("unknown_profile_field")`` naming the closest known path.
    """
    prefix, dot, rest = path.partition(".")
    if dot and rest:
        if prefix == TRAITS:
            if not _TRAIT_NAME.fullmatch(rest):
                raise PydanticCustomError(
                    "invalid_trait_name",
                    "'{trait}': an identify trait's name is 1 to 100 letters, digits, spaces, '_', '.' or '-'",
                    {"trait": path},
                )
            return PathRef(path, "traits", TRAITS, rest, "json")
        if prefix in COUNT_FIELDS:
            return PathRef(path, "counts", prefix, rest, "number")
        if prefix == LOYALTY and loyalty and rest in LOYALTY_FIELDS:
            return PathRef(path, "loyalty", rest, None, LOYALTY_FIELDS[rest])
    kind = PROFILE_FIELDS.get(path)
    if kind is not None:
        return (
            PathRef(path, "computed", rest, None, kind)
            if prefix == COMPUTED and dot
            else PathRef(path, "field", path, None, kind)
        )
    raise _unknown(path, known_paths(loyalty=loyalty))


def known_paths(*, loyalty: bool = False) -> list[str]:
    """Every path, a map's or the traits' as ``<map>.<name>`` / ``traits.<trait>`` (for errors and docs)."""
    known = sorted(PROFILE_FIELDS) + [f"{name}.<name>" for name in sorted(COUNT_FIELDS)] + [f"{TRAITS}.<trait>"]
    return known + ([f"{LOYALTY}.{name}" for name in sorted(LOYALTY_FIELDS)] if loyalty else [])


def _unknown(path: str, known: list[str]) -> PydanticCustomError:
    close = difflib.get_close_matches(path, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return PydanticCustomError(
        "unknown_profile_field",
        "no profile field '{trait}'{hint}; known: {known}",
        {"trait": path, "hint": hint, "known": ", ".join(known)},
    )


def read(profile: Mapping[str, Any], path: str, loyalty: Mapping[str, Any] | None = None) -> Any:
    """The value at ``path`` in a profile in the contract's JSON shape (``CustomerProfile``),
    or None; ``loyalty``: the ledger's ``points`` and ``tier``, for ``loyalty.<field>``."""
    ref = parse_path(path, loyalty=True)
    if ref.root == "field":
        return profile.get(ref.name)
    if ref.root == "computed":
        return (profile.get(COMPUTED) or {}).get(ref.name)
    if ref.root == "counts":
        return (profile.get(ref.name) or {}).get(ref.key, 0)
    if ref.root == "traits":
        return (profile.get(TRAITS) or {}).get(ref.key)
    return (loyalty or {}).get(ref.name)


def computed_path(trait: str) -> str:
    """The path of a computed trait (``churn_risk`` → ``computed.churn_risk``), as profile
    changes name it in ``changed`` and ``previous``."""
    return f"{COMPUTED}.{trait}"


def _profile_path(path: str) -> str:
    parse_path(path)
    return path


def _trigger_path(path: str) -> str:
    ref = parse_path(path, loyalty=True)
    if not ref.reported and ref.root != "loyalty":
        raise PydanticCustomError(
            "unreported_profile_field",
            "a trait trigger fires when a profile change names its field; '{trait}' is inside "
            "'{container}', which changes are not named by; use a condition instead",
            {"trait": path, "container": ref.name},
        )
    return path


_PATH_TEXT = StringConstraints(min_length=1, max_length=300)
ProfilePath = Annotated[str, _PATH_TEXT, AfterValidator(_profile_path)]
"""A path of the grammar above without ``loyalty.``: segments' and rules' trait conditions."""
TriggerPath = Annotated[str, _PATH_TEXT, AfterValidator(_trigger_path)]
"""A trait trigger's path: a field or computed trait a profile change names, or ``loyalty.<field>``."""
