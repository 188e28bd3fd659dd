"""Every report against the speed goal: it answers in < 1 s p95 with 100,000 customers and 10
million events stored, measured next to a bare ClickHouse scan of the columns it reads.

``make bench-reports`` (``BENCH_ARGS=--quick``: 10,000 customers and 1 million events):

1. the store: the console bench's (:mod:`bench.console_seed`), seeded once per size and kept in
   ``--cache`` (``.ecrm/bench-console/``); only its ClickHouse is started. Its migrations are
   applied first (:func:`migrated`: an unreleased migration edited since the store got it is
   applied again), then :func:`extras` adds, once per store, the business events the seed does not
   generate (campaign traffic and emails with UTM context, cases, loyalty points and rewards,
   refunds, surveys, suppressed and failed messages), so every report reads realistic rows;
2. every report of :data:`ecrm_interaction.reports.REPORTS` (a report that lands is measured by
   landing there), with each parameter set of :data:`CASES` (a report not listed there: its
   defaults, the last 30 days, and the last 365 days), runs ``--warmup`` times, then
   ``--requests`` times one after another, end to end as the API runs it
   (:func:`ecrm_interaction.api.services.reports.run`: its queries, then its shape);
3. the ceiling of each case: ClickHouse's plan of every query the report runs
   (``EXPLAIN json = 1, indexes = 1, header = 1, actions = 1``) names the tables, the columns and the key
   ranges each read covers (:func:`reads`); the bare scan reads those columns over those ranges,
   once per table and range, with nothing but ``byteSize`` over them (:func:`bare_scan_sql`), and
   is timed the same way.

Reported per case: p50, p95 (nearest rank) and max in ms, p95 over the bare scan's p95, met when
p95 < 1 s; and per query the rows and bytes it read (the slowest one named for a case that misses).
A case over the ceiling or failing fails the run (exit status 1). Writes
``bench/results/reports-<UTC time>.json`` and ``.md``.

    uv run --frozen python -m bench.reports_bench run --quick
    uv run --frozen python -m bench.reports_bench run --requests 20 --report trends
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from bench import report
from bench.collector_bench import git_state
from bench.console_bench import CACHE
from bench.console_seed import DB, FULL, QUICK, Size, prepared
from bench.open_loop import percentile
from ecrm_aggregator.migrate import MigrationDrift, load_migrations
from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_embedded.testing import ClickHouseServer

RESULTS = Path(__file__).resolve().parent / "results"
CEILING_MS = report.REPORTS_CEILING_MS
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0] if __doc__ else None)
console = Console(stderr=True)


def _days_ago(days: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days)).isoformat()


YEAR = _days_ago(364)
"""The first day of the last 365 days (the default range, the last 30 days, starts 29 days ago)."""
QUARTER = _days_ago(89)

CASES: dict[str, list[dict[str, str]]] = {
    "trends": [
        {},
        {"event": "page", "measure": "customers", "interval": "week", "since": YEAR},
        {"event": "Product Viewed", "breakdown": "property", "key": "product_id", "measure": "customers",
         "interval": "week", "since": YEAR},
        {"event": "Order Completed", "breakdown": "segment", "interval": "month", "since": YEAR},
        {"event": "Email Opened", "breakdown": "trait", "key": "plan", "since": QUARTER, "segment": "newsletter"},
    ],
    "funnels": [
        {},
        {"since": YEAR, "window_days": "14"},
        {"since": YEAR, "breakdown": "campaign"},
        {"steps": "page,Product Viewed,Product Added,Order Completed", "since": QUARTER, "breakdown": "segment"},
    ],
    "retention": [
        {},
        {"since": YEAR, "interval": "month", "periods": "11"},
        {"since": YEAR, "cohort": "first_purchase", "returning": "Order Completed", "interval": "month",
         "periods": "11"},
    ],
    "lifecycle": [{}, {"since": YEAR, "interval": "month"}],
    "rfm": [{}, {"since": YEAR}, {"since": QUARTER, "segment": "buyers"}],
    "revenue": [
        {},
        {"since": YEAR, "interval": "month", "by": "campaign"},
        {"since": YEAR, "interval": "week", "by": "segment"},
        {"since": QUARTER, "by": "channel"},
    ],
    "campaigns": [
        {},
        {"since": YEAR, "by": "variant"},
        {"since": YEAR, "by": "link", "attribution": "first_touch", "window_days": "30"},
    ],
    "satisfaction": [{}, {"since": YEAR, "interval": "month"}, {"since": YEAR, "survey": "csat", "question": "csat"}],
    "service": [{}, {"since": YEAR, "interval": "week", "by": "cause"}],
    "loyalty": [{}, {"since": YEAR, "interval": "month"}],
}  # fmt: skip
"""Representative filters per report, as query strings give them (``Params.model_validate`` of
each must pass: ``tests/test_reports_bench.py`` checks it). A report not listed is measured with
:func:`default_cases`."""


def default_cases(module: ModuleType) -> list[dict[str, str]]:
    """A report's defaults (the last 30 days) and the last 365 days, by week when it has periods."""
    year = {"since": YEAR}
    if "interval" in module.Params.model_fields:
        year["interval"] = "week"
    return [{}, year]


def cases_of(name: str, module: ModuleType) -> list[dict[str, str]]:
    return CASES.get(name) or default_cases(module)


def case_label(params: dict[str, str]) -> str:
    """``default`` for a report's defaults, else its filters as a query string would give them
    (the relative dates as ``-365d`` and ``-90d``)."""
    if not params:
        return "default"
    relative = {YEAR: "-365d", QUARTER: "-90d"}
    return " ".join(f"{k}={relative.get(v, v)}" for k, v in params.items())


# --- the store -----------------------------------------------------------------------------------

CREATED = re.compile(r"^CREATE (?:MATERIALIZED )?(?:TABLE|VIEW) IF NOT EXISTS (\w+\.\w+)")
REPEATABLE = re.compile(r"^ALTER TABLE \w+\.\w+\s+(?:ADD COLUMN IF NOT EXISTS|MATERIALIZE COLUMN)\b")
"""Statements on another migration's table that can run again as they are (a column added if
missing, a column's values computed again)."""


def migrated(client: Any, say: Callable[[str], None]) -> list[int]:
    """The aggregator's migrations applied to the bench's store. A migration edited after the
    store got it (allowed while it is unreleased; a released one never changes) is applied again:
    what it created is dropped and recreated, its backfill rerun, its repeatable statements
    (:data:`REPEATABLE`) run again. One that otherwise alters or inserts into tables it did not
    create cannot be undone so: then delete the cached store."""
    try:
        return migrate_clickhouse(client, DB)
    except MigrationDrift:
        pass
    applied = dict(client.query(f"SELECT version, checksum FROM {DB}.schema_migrations").result_rows)
    for migration in load_migrations():
        if migration.version not in applied or applied[migration.version] == migration.checksum:
            continue
        statements = migration.statements(DB)
        created = [m[1] for s in statements if (m := CREATED.match(s))]
        for statement in statements:
            target = re.match(r"^(?:ALTER TABLE|INSERT INTO) (\w+\.\w+)", statement)
            if REPEATABLE.match(statement):
                continue
            if (target and target[1] not in created) or not (CREATED.match(statement) or target):
                raise RuntimeError(f"migration {migration.version:04d}_{migration.name} changed since the bench's "
                                   f"store got it and cannot be applied again ({statement[:60]}…): delete "
                                   f"{CACHE} and seed again")  # fmt: skip
        say(f"migration {migration.version:04d}_{migration.name} changed since the store got it: applied again")
        for table in reversed(created):
            client.command(f"DROP TABLE IF EXISTS {table} SYNC")
        client.command(f"ALTER TABLE {DB}.schema_migrations DELETE WHERE version = {migration.version} "
                       "SETTINGS mutations_sync = 2")  # fmt: skip
    return migrate_clickhouse(client, DB)


EXTRAS_VERSION = 1
"""Bump when :func:`extras_sql` changes: the rows of an older version are deleted and written anew."""
EXTRAS_MARKER = f"{DB}.bench_report_extras"
EXTRAS_PREFIX = "rx-"
"""The message ids of the extra events start with it."""
CAMPAIGNS = ("spring-sale", "summer-sale", "black-friday", "newsletter-weekly", "winback", "launch-p1", "retargeting",
             "holiday-gifts")  # fmt: skip
SOURCES = ("newsletter", "google", "facebook", "newsletter", "newsletter", "instagram", "google", "partner")
MEDIUMS = ("email", "cpc", "social", "email", "email", "social", "display", "referral")


def _array(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def extras_sql(size: Size, anchor: str) -> dict[str, str]:
    """The extra events (what the console seed does not generate), per kind: ``INSERT … SELECT …
    FROM numbers()``, drawn by ClickHouse from the row numbers (the same rows every time for the
    same ``anchor``, the newest seeded event's time) over the twelve months before ``anchor``,
    customers Zipf-like as in the seed. For E events and C customers: E / 400 campaign visits
    (a landing page, then product views, carts and orders, 2.9 events each, with UTM context),
    E / 400 campaign emails (sent, delivered, opened, clicked, bounced, spam, unsubscribed; A/B
    variants), C / 10 cases (opened, updated, escalated, resolved), E / 200 loyalty points
    changes (5 % with a reward), E / 1000 refunds, E / 200 NPS answers with a campaign's context
    (60 % with a satisfaction answer) and E / 400 suppressed or failed messages: about 3.3 % more
    events."""
    c, e = size.customers, size.events
    campaign = f"{_array(CAMPAIGNS)}[h % 8 + 1]"
    utm = (f"concat('{{\"campaign\":{{\"source\":\"', {_array(SOURCES)}[h % 8 + 1], '\",\"medium\":\"', "
           f"{_array(MEDIUMS)}[h % 8 + 1], '\",\"name\":\"', {campaign}, '\"}},\"ip\":\"203.0.113.9\",'"
           "'\"library\":{\"name\":\"analytics.js\"}}')")  # fmt: skip
    plain = '\'{"ip":"203.0.113.9","library":{"name":"analytics.js"}}\''

    def rows(kind: str, salt: int, count: int, steps: str, select: str) -> str:
        """``count`` draws, each ``n`` (its customer), ``h``, ``d`` and ``d2`` (uniform), ``t0`` (its
        time), array-joined with ``steps`` (an array of step numbers) into ``select``'s rows."""
        return f"""
INSERT INTO {DB}.events (message_id, customer_id, user_id, anonymous_id, type, event, timestamp, sent_at,
    received_at, properties, traits, context, source_partition, source_offset)
SELECT concat('{EXTRAS_PREFIX}{kind}-', toString(number), '-', toString(step)), concat('c', toString(n)),
       concat('c', toString(n)), concat('a', toString(n)), type, event, ts, ts, ts, properties, '{{}}', context,
       toUInt16(n % 12), 0
FROM (
    SELECT number, step, n, {select}
    FROM (
        SELECT number,
               toUInt32(least({c - 1}, floor({c} * pow(cityHash64(number, {salt}) / 18446744073709551615.0, 2.5))))
                   AS n,
               cityHash64(number, {salt + 1}) AS h,
               cityHash64(number, {salt + 2}) % 100 AS d,
               cityHash64(number, {salt + 3}) % 1000 AS d2,
               toDateTime64('{anchor}', 3, 'UTC') - toIntervalSecond(cityHash64(number, {salt + 4}) % 31449600)
                   - toIntervalDay(7) AS t0
        FROM numbers({count})
    ) ARRAY JOIN {steps} AS step
)"""

    product = 'concat(\'"product_id":"p\', toString(h % 500), \'","name":"Product \', toString(h % 500), \'"\')'
    visits = rows("visit", 201, e // 400, "range(multiIf(d < 30, 4, d < 60, 3, 2))", f"""
        if(step = 0, 'page', 'track') AS type,
        ['', 'Product Viewed', 'Product Added', 'Order Completed'][step + 1] AS event,
        t0 + toIntervalSecond(step * (60 + h % 900)) AS ts,
        multiIf(step = 0, concat('{{"path":"/landing/', {campaign}, '","title":"', {campaign}, '"}}'),
                step < 3, concat('{{', {product}, ',"price":', toString(5 + h % 195), '}}'),
                concat('{{"order_id":"rx-o-', toString(number), '","total":', toString(20 + h % 480),
                       ',"currency":"EUR","products":[{{', {product}, ',"quantity":1}}]}}')) AS properties,
        {utm} AS context""")  # fmt: skip
    email_events = _array(("Email Sent", "Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced",
                           "Email Marked as Spam", "Unsubscribed"))  # fmt: skip
    email_steps = "arrayFilter(s -> [1, d < 95, d < 40, d < 8, d >= 97, d2 < 2, d2 >= 2 AND d2 < 7][s + 1], range(7))"
    emails = rows("email", 211, e // 400, email_steps, f"""
        'track' AS type, {email_events}[step + 1] AS event,
        t0 + toIntervalSecond([0, 5, 3600 + h % 172800, 3900 + h % 172800, 10, 7200, 10800][step + 1]) AS ts,
        concat('{{"email_id":"rx-e-', toString(number), '","campaign_id":"', {campaign}, '","variant":"',
               ['A', 'B'][h % 2 + 1], '","template":"campaign-', toString(h % 8), '"',
               multiIf(step = 2, if(d2 % 10 = 0, ',"machine_open":true', ',"machine_open":false'),
                       step = 3, concat(',"link_url":"https://shop.example.com/', {campaign}, '"'),
                       step = 4, concat(',"bounce_type":"', if(d2 % 3 = 0, 'hard', 'soft'), '"'), ''),
               '}}') AS properties,
        {utm} AS context""")  # fmt: skip
    case_status = _array(("open", "pending", "open", "resolved"))
    cases = rows("case", 221, max(10, c // 10), "arrayFilter(s -> [1, d < 50, d2 < 150, d < 80][s + 1], range(4))", f"""
        'track' AS type, ['Case Opened', 'Case Updated', 'Case Escalated', 'Case Resolved'][step + 1] AS event,
        t0 + toIntervalSecond([0, 3600 + h % 82800, 86400 + h % 172800, 3600 + h % 432000][step + 1]) AS ts,
        concat('{{"case_id":"rx-case-', toString(number), '","subject":"Detractor follow-up","priority":"',
               ['low', 'normal', 'high', 'urgent'][h % 4 + 1], '","status":"', {case_status}[step + 1],
               '","rule_id":"', if(h % 2 = 0, 'detractor-case', ''), '"}}') AS properties,
        {plain} AS context""")  # fmt: skip
    tier = "multiIf(h % 6000 >= 5000, 'platinum', h % 6000 >= 2000, 'gold', h % 6000 >= 500, 'silver', 'bronze')"
    loyalty = rows("points", 231, e // 200, "range(if(d2 < 50, 2, 1))", f"""
        'track' AS type, ['Loyalty Points Awarded', 'Reward Issued'][step + 1] AS event,
        t0 + toIntervalSecond(step * 60) AS ts,
        if(step = 0,
           concat('{{"points":', toString(if(d < 10, -100 - toInt64(h % 400), 20 + toInt64(h % 200))),
                  ',"balance":', toString(h % 6000), ',"tier":"', {tier}, '","reason":"',
                  ['Order Completed', 'Email Link Clicked', 'birthday', 'redeemed'][h % 4 + 1], '"}}'),
           concat('{{"reward_id":"rx-r-', toString(number), '","kind":"',
                  ['voucher', 'free-shipping', 'gift'][h % 3 + 1], '","tier":"', {tier}, '","rule_id":"gold-reward"}}'))
            AS properties,
        {plain} AS context""")  # fmt: skip
    refunds = rows("refund", 241, e // 1000, "[0]", f"""
        'track' AS type, 'Order Refunded' AS event, t0 AS ts,
        concat('{{"order_id":"o-', toString(h % 1000000), '","total":', toString(20 + h % 480),
               ',"currency":"EUR","reason":"', ['damaged', 'late', 'changed mind'][h % 3 + 1], '"}}') AS properties,
        {plain} AS context""")  # fmt: skip
    surveys = rows("survey", 251, e // 200, "range(if(d < 60, 2, 1))", f"""
        'track' AS type, ['NPS Answered', 'Survey Answered'][step + 1] AS event,
        t0 + toIntervalSecond(step * 30) AS ts,
        if(step = 0,
           concat('{{"survey_id":"nps-', {campaign}, '","question_id":"nps","score":', toString(h % 11), '}}'),
           concat('{{"survey_id":"csat","question_id":"', ['csat', 'ease'][h % 2 + 1], '","answer":',
                  toString(1 + h % 5), '}}')) AS properties,
        {utm} AS context""")  # fmt: skip
    reasons = _array(("frequency_cap", "quiet_hours", "no_consent", "suppressed_address"))
    messages = rows("message", 261, e // 400, "[0]", f"""
        'track' AS type, if(d < 70, 'Message Suppressed', 'Message Failed') AS event, t0 AS ts,
        concat('{{"decision_id":"rx-d-', toString(number), '","rule_id":"',
               ['welcome-on-first-identify', 'thanks-for-order', 'cart-reminder'][h % 3 + 1],
               '","action":"email","channel":"email","reason":"',
               if(d < 70, {reasons}[h % 4 + 1], 'smtp: 550 mailbox unavailable'), '"}}') AS properties,
        {plain} AS context""")  # fmt: skip
    return {"campaign visits": visits, "campaign emails": emails, "cases": cases, "loyalty": loyalty,
            "refunds": refunds, "surveys": surveys, "messages": messages}  # fmt: skip


def extras(client: Any, size: Size, say: Callable[[str], None]) -> dict[str, Any]:
    """The extra events in the store, written once per :data:`EXTRAS_VERSION` (a marker row says
    so; rows of an earlier version or a run cut off halfway are deleted first): what they are."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {EXTRAS_MARKER} (version UInt32, anchor String, rows UInt64, "
        "seconds Float64, at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    marked = client.query(f"SELECT anchor, rows, seconds FROM {EXTRAS_MARKER} WHERE version = {EXTRAS_VERSION}")
    if marked.result_rows:
        anchor, count, seconds = marked.result_rows[0]
        return {"version": EXTRAS_VERSION, "anchor": anchor, "rows": count, "seconds": seconds, "reused": True}
    began = time.perf_counter()
    prefix = f"startsWith(message_id, '{EXTRAS_PREFIX}')"
    for table in ("events", "business_events"):
        if client.query(f"SELECT count() FROM {DB}.{table} WHERE {prefix}").result_rows[0][0]:
            client.command(f"ALTER TABLE {DB}.{table} DELETE WHERE {prefix} SETTINGS mutations_sync = 2")
    client.command(f"TRUNCATE TABLE {EXTRAS_MARKER}")
    newest = client.query(f"SELECT max(timestamp) FROM {DB}.events").result_rows[0][0]
    anchor = newest.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat(sep=" ")
    for kind, sql in extras_sql(size, anchor).items():
        say(f"extra events: {kind}")
        client.command(sql)
    count = int(client.query(f"SELECT count() FROM {DB}.events WHERE {prefix}").result_rows[0][0])
    seconds = round(time.perf_counter() - began, 1)
    client.insert(EXTRAS_MARKER, [[EXTRAS_VERSION, anchor, count, seconds]],
                  column_names=["version", "anchor", "rows", "seconds"])  # fmt: skip
    return {"version": EXTRAS_VERSION, "anchor": anchor, "rows": count, "seconds": seconds, "reused": False}


# --- what a query reads --------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One table read of a query's plan: its columns (with their types), whether with ``FINAL``,
    and the key ranges its indexes selected (``(column, operator, literal)``, ``and``-ed; operator
    ``in`` with the set's size for a set, until :func:`with_sets` gives its values, ``IN``).
    ``wider``: a condition of the read's keys the bare scan cannot repeat (it reads more rows)."""

    table: str
    columns: tuple[tuple[str, str], ...]
    final: bool = False
    ranges: tuple[tuple[str, str, str], ...] = ()
    wider: bool = False


VALUE = r"'(?:[^'\\]|\\.)*'|[-+]?Inf|[-+]?[0-9][0-9.e+-]*"
ATOM = re.compile(rf"\((\w+) in ([\[(])({VALUE}), ({VALUE})([\])])\)")
SET_ATOM = re.compile(r"\((\w+) in (\d+)-element set\)")


def key_ranges(condition: str) -> list[tuple[str, str, str]]:
    """The ranges of plain columns in an index condition as ClickHouse prints it, when it is one
    range or an ``and`` of them: ``and((timestamp in ['1793577600', +Inf)), (event in ['A', 'A']))``
    → ``[("timestamp", ">=", "'1793577600'"), ("event", ">=", "'A'"), ("event", "<=", "'A'")]``;
    ``(event in 3-element set)`` → ``("event", "in", "3")``. A condition with ``or`` or ``not``
    gives none (a function of a column is left out: the bare scan then reads wider, never
    narrower)."""
    if re.search(r"\bor\(|\bnot\(| not in |\bunknown\b", condition):
        return []
    found = []
    for column, opening, low, high, closing in ATOM.findall(condition):
        if not low.endswith("Inf"):
            found.append((column, ">=" if opening == "[" else ">", low))
        if not high.endswith("Inf"):
            found.append((column, "<=" if closing == "]" else "<", high))
    found += [(column, "in", size) for column, size in SET_ATOM.findall(condition)]
    return found


QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def in_lists(sql: str, parameters: dict[str, Any], column: str) -> list[set[str]]:
    """The value lists ``sql`` compares ``column`` with (``e.event IN ('a', 'b')``, or ``IN`` an
    array parameter), each as quoted literals."""
    found = []
    pattern = rf"\b(?:\w+\.)?{re.escape(column)}\s+IN\s+(?:\(([^()]*)\)|\{{(\w+):Array\(String\)\}})"
    for literal, parameter in re.findall(pattern, sql):
        if parameter:
            found.append({_quote(str(v)) for v in parameters.get(parameter, [])})
        elif literal.strip() and QUOTED.sub("", literal).replace(",", "").strip() == "":
            found.append(set(QUOTED.findall(literal)))
    return found


def with_sets(read: Read, sql: str, parameters: dict[str, Any]) -> Read:
    """``read`` with its sets' values, taken from the query (a list of that many values compared
    with the column); a set it cannot find so is left out, the read marked ``wider``."""
    ranges, wider = [], read.wider
    for column, op, value in read.ranges:
        if op != "in":
            ranges.append((column, op, value))
            continue
        lists = [v for v in in_lists(sql, parameters, column) if len(v) == int(value)]
        if len({frozenset(v) for v in lists}) == 1:
            ranges.append((column, "IN", "(" + ", ".join(sorted(lists[0])) + ")"))
        else:
            wider = True
    return Read(read.table, read.columns, read.final, tuple(ranges), wider)


def reads(plan: Any) -> list[Read]:
    """Every table read of an ``EXPLAIN json = 1, indexes = 1, header = 1, actions = 1`` plan (its
    parsed JSON): the columns it passes on and those its ``PREWHERE`` reads."""
    found: list[Read] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Node Type") == "ReadFromMergeTree":
            columns = {c["Name"]: c["Type"] for c in node.get("Header", [])}
            prewhere = (node.get("Prewhere info") or {}).get("Prewhere filter") or {}
            for c in (prewhere.get("Prewhere filter expression") or {}).get("Inputs", []):
                columns.setdefault(c["Name"], c["Type"])
            ranges: list[tuple[str, str, str]] = []
            for index in node.get("Indexes", []):
                if index.get("Type") in ("PrimaryKey", "Min-Max"):
                    ranges += [r for r in key_ranges(index.get("Condition", "")) if r not in ranges]
            found.append(Read(node["Description"], tuple(sorted((n, t) for n, t in columns.items()
                                                                if not n.startswith("_"))),
                              bool(node.get("FINAL")), tuple(ranges)))  # fmt: skip
        for child in node.get("Plans", []):
            walk(child)

    for entry in plan if isinstance(plan, list) else [plan]:
        walk(entry.get("Plan", entry))
    return found


def merged(found: list[Read]) -> list[Read]:
    """One read per table and key range, with every column any of them reads: the least a
    report's queries must read."""
    by: dict[tuple[str, tuple[tuple[str, str, str], ...]], Read] = {}
    for r in found:
        key = (r.table, r.ranges)
        if key in by:
            before = by[key]
            r = Read(r.table, tuple(sorted(set(before.columns) | set(r.columns))), r.final or before.final, r.ranges,
                     r.wider or before.wider)  # fmt: skip
        by[key] = r
    return list(by.values())


def _literal(value: str, type_: str) -> str:
    """An index condition's literal as SQL for a column of ``type_`` (a time is printed as epoch seconds)."""
    if type_.startswith("DateTime64"):
        return f"toDateTime64({value.strip(chr(39))}, 3, 'UTC')"
    if type_.startswith("DateTime"):
        return f"toDateTime({value.strip(chr(39))}, 'UTC')"
    return value


def bare_scan_sql(found: list[Read], tables: dict[str, dict[str, str]] | None = None) -> str:
    """One statement reading each :func:`merged` read's columns over its key ranges and nothing
    more (``byteSize`` of them summed: no work but reading and decompressing). ``tables``: each
    table's column types (``system.columns``), for a range on a column the read does not pass on."""
    parts = []
    for r in merged(found):
        types = (tables or {}).get(r.table, {}) | dict(r.columns)
        where = " AND ".join(f"{name} {op} {value if op == 'IN' else _literal(value, types.get(name, ''))}"
                             for name, op, value in r.ranges if op != "in")  # fmt: skip
        columns = ", ".join(f"`{n}`" for n, _ in r.columns) or "1"
        parts.append(f"SELECT '{r.table}' AS t, sum(byteSize({columns})) AS bytes FROM {r.table}"
                     + (f" WHERE {where}" if where else ""))  # fmt: skip
    return "\nUNION ALL\n".join(parts) or "SELECT '' AS t, 0 AS bytes"


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Timed:
    times_ms: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        return {"p50_ms": round(statistics.median(self.times_ms), 1),
                "p95_ms": round(percentile(self.times_ms, 95), 1), "max_ms": round(max(self.times_ms), 1)}  # fmt: skip


async def timed(call: Callable[[], Awaitable[Any]], warmup: int, requests: int) -> Timed:
    out = Timed()
    for i in range(warmup + requests):
        began = time.perf_counter()
        await call()
        if i >= warmup:
            out.times_ms.append((time.perf_counter() - began) * 1000)
    return out


def explain(client: Any, sql: str, parameters: dict[str, Any]) -> list[Read]:
    plan = client.query(
        f"EXPLAIN json = 1, indexes = 1, header = 1, actions = 1 {sql}", parameters=parameters
    ).result_rows[0][0]
    return reads(json.loads(plan))


def probe(client: Any, sql: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """One run of a query alone: ms, rows and bytes read (ClickHouse's summary), rows answered."""
    began = time.perf_counter()
    result = client.query(sql, parameters=parameters)
    took = (time.perf_counter() - began) * 1000
    summary = result.summary or {}
    return {"ms": round(took, 1), "read_rows": int(summary.get("read_rows", 0)),
            "read_bytes": int(summary.get("read_bytes", 0)), "result_rows": len(result.result_rows)}  # fmt: skip


async def measure_case(warehouse: Any, name: str, module: ModuleType, raw: dict[str, str], warmup: int,
                       requests: int, tables: dict[str, dict[str, str]]) -> dict[str, Any]:  # fmt: skip
    """One report with one parameter set: end to end, its queries alone, and its bare scan."""
    from ecrm_interaction.api.services.reports import run as run_report

    figures: dict[str, Any] = {"report": name, "case": case_label(raw), "params": raw}
    try:
        params = module.Params.model_validate(raw)
        queries = module.queries(params)
        client, db = warehouse.client, warehouse.db
        found: list[Read] = []
        probes = {}
        for query_name, query in queries.items():
            sql = query.sql.replace("{db}", db)
            plan = [with_sets(r, sql, query.parameters) for r in explain(client, sql, query.parameters)]
            found += plan
            probes[query_name] = probe(client, sql, query.parameters) | {
                "reads": [asdict(r) | {"columns": [n for n, _ in r.columns]} for r in plan]
            }
        answer = await run_report(warehouse, module, params)
        measured = await timed(lambda: run_report(warehouse, module, params), warmup, requests)
        bare = bare_scan_sql(found, tables)
        bare_probe = probe(client, bare, {})
        bare_measured = await timed(lambda: warehouse.query(bare), warmup, requests)
    except Exception as exc:  # a report that fails is reported, not a crash of the whole bench
        return figures | {"error": f"{type(exc).__name__}: {str(exc)[:500]}", "met": False}
    p95, bare_p95 = percentile(measured.times_ms, 95), percentile(bare_measured.times_ms, 95)
    slowest = max(probes, key=lambda q: probes[q]["ms"])
    return figures | measured.figures() | {
        "requests": len(measured.times_ms),
        "rows": len(answer.rows),
        "queries": probes,
        "slowest_query": slowest,
        "read_rows": sum(p["read_rows"] for p in probes.values()),
        "read_bytes": sum(p["read_bytes"] for p in probes.values()),
        "bare": bare_measured.figures() | {"sql": bare, "read_rows": bare_probe["read_rows"],
                                           "read_bytes": bare_probe["read_bytes"],
                                           "wider": any(r.wider for r in found)},
        "ratio_to_bare": round(p95 / bare_p95, 2) if bare_p95 else None,
        "ratio_to_ceiling": round(p95 / CEILING_MS, 3),
        "met": p95 < CEILING_MS,
    }  # fmt: skip


async def measure_all(warehouse: Any, reports: dict[str, ModuleType], warmup: int, requests: int,
                      say: Callable[[str], None]) -> list[dict[str, Any]]:  # fmt: skip
    tables: dict[str, dict[str, str]] = {}
    for table, column, type_ in warehouse.client.query(
        "SELECT concat(database, '.', table), name, type FROM system.columns WHERE database = {db:String}",
        parameters={"db": warehouse.db},
    ).result_rows:
        tables.setdefault(table, {})[column] = type_
    measured = []
    for name, module in reports.items():
        for raw in cases_of(name, module):
            say(f"report: {name} {case_label(raw)}")
            measured.append(await measure_case(warehouse, name, module, raw, warmup, requests, tables))
    return measured


def stage(size: Size, database: str = "postgres", requests: int = 20, warmup: int = 2, cache: Path = CACHE,
          say: Callable[[str], None] = lambda text: console.print(f"  {text}"),
          only: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Seed (or reuse) the store, add the extra events, measure every report's cases."""
    from ecrm_interaction.api.services.warehouse import Warehouse
    from ecrm_interaction.reports import REPORTS

    unknown = set(only) - set(REPORTS)
    if unknown:
        raise ValueError(f"no such report: {', '.join(sorted(unknown))} (there are {', '.join(REPORTS)})")
    reports = {name: module for name, module in REPORTS.items() if not only or name in only}
    directory, seeded, reused = prepared(cache, size, database, say)
    clickhouse = ClickHouseServer(directory / "clickhouse", directory / "clickhouse.log").start()
    try:
        admin = clickhouse.client(send_receive_timeout=3600)
        applied = migrated(admin, say)
        extra = extras(admin, size, say)
        counts = dict(admin.query(f"SELECT table, sum(rows) FROM system.parts WHERE database = '{DB}' AND active "
                                  "AND table IN ('events', 'business_events') GROUP BY table").result_rows)  # fmt: skip
        warehouse = Warehouse(clickhouse.service_client(), DB)  # as the API builds it: no session, shared
        load_before = os.getloadavg()
        measured = asyncio.run(measure_all(warehouse, reports, warmup, requests, say))
        load_after = os.getloadavg()
    finally:
        clickhouse.stop()
    failed = [m for m in measured if not m.get("met")]
    age = datetime.now(UTC) - datetime.fromisoformat(seeded.seeded_at)
    return {
        "customers": seeded.customers,
        "events": seeded.events,
        "events_stored": int(counts.get("events", 0)),
        "business_events_stored": int(counts.get("business_events", 0)),
        "database": database,
        "ceiling_ms": CEILING_MS,
        "requests_per_case": requests,
        "warmup_per_case": warmup,
        "seed": {
            "seconds": seeded.seed_seconds,
            "seeded_at": seeded.seeded_at,
            "reused": reused,
            "age_days": round(age.total_seconds() / 86400, 1),
            "migrations_applied": applied,
        },
        "extras": extra,
        "reports": list(reports),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "measured": measured,
        "slowest_p95_ms": max((m["p95_ms"] for m in measured if "p95_ms" in m), default=None),
        "passed": not failed,
    }


# --- reporting -----------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> Table:
    out = Table(title=f"Reports, {result['customers']:,} customers and {result['events_stored']:,} events, "
                      f"p95 < {CEILING_MS:,.0f} ms, next to a bare scan of the columns they read",
                caption="*: the bare scan read more rows than the report (a key condition it cannot repeat)",
                )  # fmt: skip
    for column in ("report", "case", "p50 ms", "p95 ms", "max ms", "bare p95 ms", "p95 / bare", "rows read", "MiB read",
                   ""):  # fmt: skip
        out.add_column(column)
    for m in result["measured"]:
        if "error" in m:
            out.add_row(m["report"], m["case"], "", "", "", "", "", "", "", f"[red]ERROR: {m['error']}[/red]")
            continue
        state = "[green]met[/green]" if m["met"] else f"[red]MISSED[/red] (slowest: {m['slowest_query']})"
        ratio = "–" if m["ratio_to_bare"] is None else f"{m['ratio_to_bare']:.1f}" + ("*" if m["bare"]["wider"] else "")
        out.add_row(m["report"], m["case"], f"{m['p50_ms']:.1f}", f"{m['p95_ms']:.1f}", f"{m['max_ms']:.1f}",
                    f"{m['bare']['p95_ms']:.1f}", ratio, f"{m['read_rows']:,}", f"{m['read_bytes'] / 2**20:,.1f}",
                    state)  # fmt: skip
    return out


@app.callback()
def main() -> None:
    """The reports against their speed goal (``run``)."""


@app.command()
def run(
    quick: Annotated[
        bool, typer.Option("--quick", help=f"{QUICK.customers:,} customers, {QUICK.events:,} events.")
    ] = False,
    customers: Annotated[int | None, typer.Option(help=f"Customers (default {FULL.customers:,}).")] = None,
    events: Annotated[int | None, typer.Option(help=f"Events (default {FULL.events:,}).")] = None,
    database: Annotated[
        str, typer.Option(help="The cached store's relational side (postgres or sqlite; reports read ClickHouse only).")
    ] = "postgres",
    requests: Annotated[int, typer.Option(help="Measured runs per report case.")] = 20,
    warmup: Annotated[int, typer.Option(help="Unmeasured runs per report case first.")] = 2,
    report_name: Annotated[list[str] | None, typer.Option("--report", help="Only these reports (repeatable).")] = None,
    cache: Annotated[Path, typer.Option(help="Where seeded stores are kept, one per size.")] = CACHE,
    out: Annotated[Path, typer.Option(help="Where the report goes.")] = RESULTS,
) -> None:
    """Seed (once per size), measure every report's cases; exit 1 when one misses the ceiling."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop ClickHouse
    if database not in ("postgres", "sqlite"):
        raise typer.BadParameter("postgres or sqlite", param_hint="--database")
    base = QUICK if quick else FULL
    size = Size(customers or base.customers, events or base.events)
    started = datetime.now(UTC)
    try:
        result = stage(size, database, requests, warmup, cache, only=tuple(report_name or ()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--report") from None
    result |= {"benchmark": "reports", "command": "python -m bench.reports_bench " + " ".join(sys.argv[1:]),
               "started_at": started.isoformat(timespec="seconds"), "cpus": os.cpu_count(),
               "git": git_state()}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    stem = f"reports-{started.strftime('%Y%m%dT%H%M%SZ')}"
    (out / f"{stem}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    (out / f"{stem}.md").write_text("\n".join([f"# eCRM reports benchmark, {result['started_at']}", "",
                                               *report.reports_section(result)]) + "\n")  # fmt: skip
    out_console = Console(width=None if sys.stdout.isatty() else 160)
    out_console.print(table(result))
    for line in report.reports_findings(result):
        out_console.print(f"- {line}")
    console.print(f"Written: {out / stem}.json and .md")
    if not result["passed"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
