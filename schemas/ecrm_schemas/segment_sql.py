"""Segment definitions as one ClickHouse query (pure: builds SQL text and parameters).

The one translation of a definition into SQL: the aggregator evaluates membership with it,
the interaction API previews a definition being edited with it (:func:`preview_query`).
Membership is evaluated where the data is: one query per batch (or timer tick) computes,
for every customer in scope, which segments they satisfy now. Trait conditions read the
profile's columns; event conditions count the customer's events in a window, anonymous
events stitched to them included. Every value a marketer typed travels as a query
parameter, never as SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import PydanticCustomError

from ecrm_schemas.conditions import COMBINATIONS, TraitCondition
from ecrm_schemas.profile_paths import PathRef, parse_path
from ecrm_schemas.segments import EventCondition, SegmentDefinition

VIEW_COLUMNS = ("name", "category")
"""Columns of page and screen events that ``where`` reads before ``properties``."""
COMPARISONS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
SQL_COMBINATORS = {"all": "({})", "any": "({})", "none": "NOT ({})"}
"""Each combinator of :data:`ecrm_schemas.conditions.COMBINATORS` as SQL around its joined conditions."""
SQL_JOINERS = {"all": " AND ", "any": " OR ", "none": " OR "}
SQL_OPERATORS = frozenset({*COMPARISONS, "in", "not_in", "exists", "not_exists"})
"""The operators of :data:`ecrm_schemas.conditions.OPERATORS` :meth:`_Builder.trait` translates."""


class UnknownTrait(ValueError):
    """A condition names a profile field that does not exist."""


@dataclass(slots=True)
class _Builder:
    parameters: dict[str, Any] = field(default_factory=dict)
    event_counts: list[str] = field(default_factory=list)
    """``countIf`` expressions over the events, one per event condition."""
    longest_window_days: int = 0

    def parameter(self, value: Any, type_: str) -> str:
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:{type_}}}"

    def condition(self, node: Any) -> str:
        if isinstance(node, TraitCondition):
            return self.trait(node)
        if isinstance(node, EventCondition):
            return self.events(node)
        assert isinstance(node, COMBINATIONS), node
        inner = SQL_JOINERS[node.kind].join(self.condition(c) for c in node.conditions)
        return SQL_COMBINATORS[node.kind].format(inner)

    def trait(self, node: TraitCondition) -> str:
        if node.op not in SQL_OPERATORS:
            raise ValueError(f"no SQL for the operator {node.op!r}")
        column, kind = self._column(node.trait, node.value)
        if node.op in ("exists", "not_exists"):
            present = {"text": f"{column} != ''", "json": f"JSONHas(p.traits, {self._json_key(node.trait)})"}.get(
                kind, f"isNotNull({column})"
            )
            return present if node.op == "exists" else f"NOT ({present})"
        type_ = {"number": "Float64", "time": "DateTime64(3, 'UTC')"}.get(kind, "String")
        if node.op in ("in", "not_in"):
            values = node.value if isinstance(node.value, list) else [node.value]
            array = self.parameter([_typed(v, kind) for v in values], f"Array({type_})")
            member = f"toFloat64({column})" if kind == "number" else column  # Decimal columns: no common type
            test = f"has({array}, {member})"
            return test if node.op == "in" else f"NOT {test}"
        return f"ifNull({column} {COMPARISONS[node.op]} {self.parameter(_typed(node.value, kind), type_)}, 0)"

    def _json_key(self, path: str) -> str:
        return self.parameter(_path(path).key, "String")

    def _column(self, path: str, value: Any) -> tuple[str, str]:
        ref = _path(path)
        if ref.root == "traits":
            key = self._json_key(path)
            sample = value[0] if isinstance(value, list) and value else value
            if isinstance(sample, bool):
                return f"JSONExtractBool(p.traits, {key})", "number"
            if isinstance(sample, int | float):
                return f"JSONExtractFloat(p.traits, {key})", "number"
            return f"JSONExtractString(p.traits, {key})", "json"
        if ref.root == "counts":
            return f"p.{ref.name}[{self.parameter(ref.key, 'String')}]", "number"
        return "p." + ref.name, ref.kind  # a field or a computed trait: the profile's column of that name

    def events(self, node: EventCondition) -> str:
        self.longest_window_days = max(self.longest_window_days, node.within_days)
        tests = [
            f"label = {self.parameter(node.event, 'String')}",
            f"timestamp >= {{now:DateTime64(3, 'UTC')}} - toIntervalDay({node.within_days})",
        ]
        for key, value in node.where.items():
            name = self.parameter(key, "String")
            if key in VIEW_COLUMNS and isinstance(value, str):  # a page's or screen's name or category
                found = f"if({key} != '', {key}, JSONExtractString(properties, {name}))"
                tests.append(f"{found} = {self.parameter(value, 'String')}")
            elif isinstance(value, bool):
                tests.append(f"JSONExtractBool(properties, {name}) = {self.parameter(value, 'Bool')}")
            elif isinstance(value, int | float):
                tests.append(f"JSONExtractFloat(properties, {name}) = {self.parameter(float(value), 'Float64')}")
            else:
                tests.append(f"JSONExtractString(properties, {name}) = {self.parameter(value, 'String')}")
        alias = f"e{len(self.event_counts)}"
        self.event_counts.append(f"countIf({' AND '.join(tests)}) AS {alias}")
        return f"ev.{alias} {COMPARISONS[node.op]} {node.count}"


def _path(path: str) -> PathRef:
    try:
        ref = parse_path(path)
    except PydanticCustomError as exc:
        raise UnknownTrait(str(exc)) from None
    return ref


_TIME = TypeAdapter(datetime)


def _typed(value: Any, kind: str) -> Any:
    if kind == "number":
        return float(value)
    if kind == "time":  # any form validation accepts (ISO with a zone, a date, epoch seconds) as ClickHouse reads it
        moment = _TIME.validate_python(value)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return str(value)


@dataclass(frozen=True, slots=True)
class SegmentQuery:
    sql: str
    parameters: dict[str, Any]
    segment_ids: list[str]
    """The order of the ids in the query's ``members`` array."""


def membership_query(
    database: str,
    definitions: list[SegmentDefinition],
    customers: list[str] | None = None,
    links: dict[str, str] | None = None,
    partitions: list[int] | None = None,
    *,
    everyone: bool = False,
) -> SegmentQuery:
    """The query giving, per customer in scope, the ids of the segments they are in now.

    The scope: ``customers`` (with ``links``, their stitched anonymous ids → customer, so
    their events are read by the table's sort key), or else every current profile last
    folded from one of ``partitions``, or every current profile (``everyone``). Bind ``now``
    when running it.
    """
    if not definitions:
        raise ValueError("no segment to evaluate")
    builder = _Builder()
    flags = [builder.condition(d.condition) for d in definitions]
    ids = [d.id for d in definitions]
    if everyone:
        scope = ""
    elif customers is not None:
        scope = f" AND customer_id IN {builder.parameter(customers, 'Array(String)')}"
    else:
        scope = f" AND source_partition IN {builder.parameter(partitions or [], 'Array(Int32)')}"
    events_join = ""
    if builder.event_counts:
        window = f"timestamp >= {{now:DateTime64(3, 'UTC')}} - toIntervalDay({builder.longest_window_days})"
        if customers is None or everyone:
            source = (
                "(SELECT customer_id, if(type = 'track', event, type) AS label, timestamp, properties, name, category "
                f"FROM {database}.customer_events WHERE {window})"
            )
        else:
            anonymous = list(links or {})
            keys = builder.parameter(sorted(set(customers) | set(anonymous)), "Array(String)")
            resolve = (
                f"transform(customer_id, {builder.parameter(anonymous, 'Array(String)')}, "
                f"{builder.parameter([(links or {})[a] for a in anonymous], 'Array(String)')}, customer_id)"
            )
            source = (f"(SELECT {resolve} AS customer_id, if(type = 'track', event, type) AS label, timestamp, "
                      f"properties, name, category FROM {database}.events "
                      f"WHERE customer_id IN {keys} AND {window})")  # fmt: skip
        events_join = (
            f" LEFT JOIN (SELECT customer_id, {', '.join(builder.event_counts)} FROM {source} "
            "GROUP BY customer_id) AS ev ON p.customer_id = ev.customer_id"
        )
    members = "arrayFilter((id, hit) -> hit, {ids:Array(String)}, [" + ", ".join(f"toUInt8({f})" for f in flags) + "])"
    builder.parameters["ids"] = ids
    sql = (
        f"SELECT p.customer_id, {members} AS members "
        f"FROM (SELECT * FROM {database}.profiles FINAL WHERE merged_into = ''{scope}) AS p{events_join} "
        "SETTINGS join_use_nulls = 0"
    )
    return SegmentQuery(sql, builder.parameters, ids)


def preview_query(database: str, definition: SegmentDefinition, sample: int) -> SegmentQuery:
    """One row: how many current customers ``definition`` holds now (``member_count``) and the ids
    of up to ``sample`` of them (``sample``, sorted), by the query the aggregator evaluates
    membership with. Bind ``now`` when running it."""
    inner = membership_query(database, [definition], everyone=True)
    sql = (
        f"SELECT count() AS member_count, arraySort(groupArray({int(sample)})(customer_id)) AS sample "
        f"FROM ({inner.sql.removesuffix(' SETTINGS join_use_nulls = 0')}) WHERE length(members) > 0 "
        "SETTINGS join_use_nulls = 0"
    )
    return SegmentQuery(sql, inner.parameters, inner.segment_ids)
