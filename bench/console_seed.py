"""The console benchmark's store: a shop with ``customers`` customers and ``events`` events,
written fast and kept between runs.

ClickHouse (chdb behind the embedded HTTP server, migrated with the aggregator's own
migrations) gets its rows from ``INSERT … SELECT … FROM numbers()``: ClickHouse generates
them itself, no row crosses Python. The relational store (PostgreSQL by default, or SQLite)
gets its rows with ``COPY`` (PostgreSQL) or ``executemany`` (SQLite), from the same ids.

What is stored, for ``customers`` = C and ``events`` = E (the proportions of a web shop):

* ``events``: E over twelve months, customers Zipf-like (customer ``n`` is drawn as
  ``C · u^2.5``: the busiest 1 % send about a sixth of the events, ``c0`` the most), 37 %
  page views, 20 % product views, 5 % clicks, 5 % carts, 3 % orders, 25 % email events (sent,
  delivered, opened, clicked, bounced, unsubscribed; each names one of the customer's email
  actions by ``email_id``, as the service reports them), 2 % survey and NPS answers, 5 %
  identify calls; three customers in ten also have anonymous events before they signed in;
* ``profiles``: one per customer folded from those events (counts, revenue, NPS, computed
  traits), plus the merged anonymous profiles; ``identity_links`` and ``identity_merges`` for
  the three in ten; twelve ``segment_definitions`` with their ``segment_membership`` (about
  1.5 segments per customer, some exited) and ``segment_changes`` over 90 days;
* relational: every customer's row (profile JSON, email), consents, segment memberships,
  3 email actions per customer (most sent, some suppressed, failed or waiting), a skipped
  decision per customer, the outbox's published events, cases for 2 % of customers (3 notes
  each), 3 loyalty entries per customer and rewards for 5 %, address suppressions (1 % of the
  customers' addresses, ``c0``'s too), an audit log of C / 5 entries, the example rules,
  templates and loyalty program, and the admin who signs in.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_embedded.net import free_port
from ecrm_embedded.postgres import find_pg_bin
from ecrm_embedded.testing import ClickHouseServer
from ecrm_schemas.profile import CustomerProfile
from ecrm_schemas.segments import parse_definition

DB = "ecrm"
SEED_VERSION = 3
"""Bump when what is seeded changes: the cache key includes it."""
ADMIN_EMAIL, ADMIN_PASSWORD = "bench-admin@example.com", "bench console password"
ACTIONS_PER_CUSTOMER = 3
RULES_FILE = Path(__file__).resolve().parents[1] / "services" / "interaction" / "examples" / "rules.yaml"
RFM = ("champions", "loyal", "cannot_lose_them", "at_risk", "potential_loyalist", "new_customers", "promising",
       "need_attention", "about_to_sleep", "hibernating", "lost")  # fmt: skip
LIFECYCLE = ("prospect", "new", "active", "at_risk", "churned")
TIERS = ("bronze", "silver", "gold", "platinum")
SEGMENTS: tuple[tuple[str, str, float, dict[str, Any]], ...] = (
    # id, name, share of customers in it, condition
    ("active-30d", "Active in the last 30 days", 0.40,
     {"kind": "event", "event": "page", "within_days": 30, "op": "gte", "count": 1}),
    ("newsletter", "Newsletter subscribers", 0.35,
     {"kind": "trait", "trait": "traits.newsletter", "op": "eq", "value": True}),
    ("buyers", "Ordered at least once", 0.25, {"kind": "trait", "trait": "orders", "op": "gte", "value": 1}),
    ("cart-abandoners", "Carted, no order in 7 days", 0.12,
     {"kind": "all", "conditions": [
         {"kind": "event", "event": "Product Added", "within_days": 7, "op": "gte", "count": 1},
         {"kind": "event", "event": "Order Completed", "within_days": 7, "op": "eq", "count": 0}]}),
    ("champions", "RFM champions", 0.08,
     {"kind": "trait", "trait": "computed.rfm_segment", "op": "eq", "value": "champions"}),
    ("at-risk", "At risk of churning", 0.10,
     {"kind": "trait", "trait": "computed.churn_risk", "op": "eq", "value": "high"}),
    ("detractors", "NPS detractors", 0.04,
     {"kind": "trait", "trait": "computed.nps_category", "op": "eq", "value": "detractor"}),
    ("gold-tier", "Gold and platinum members", 0.06,
     {"kind": "trait", "trait": "computed.loyalty_tier", "op": "in", "value": ["gold", "platinum"]}),
    ("big-spenders", "Revenue over 1,000", 0.05, {"kind": "trait", "trait": "revenue", "op": "gt", "value": 1000}),
    ("email-engaged", "Opened an email in 30 days", 0.09,
     {"kind": "event", "event": "Email Opened", "within_days": 30, "op": "gte", "count": 1}),
    ("vip-p1", "Viewed P1 three times in 7 days", 0.02,
     {"kind": "event", "event": "Product Viewed", "where": {"product_id": "p1"}, "within_days": 7, "op": "gte",
      "count": 3}),
    ("dormant", "No visit in 90 days", 0.01,
     {"kind": "event", "event": "page", "within_days": 90, "op": "eq", "count": 0}),
)  # fmt: skip


@dataclass(frozen=True)
class Size:
    customers: int
    events: int

    def key(self, database: str) -> str:
        return f"c{self.customers}-e{self.events}-{database}-v{SEED_VERSION}"


QUICK = Size(10_000, 1_000_000)
FULL = Size(100_000, 10_000_000)


def action_id(index: int) -> str:
    """The id of the relational email action ``index`` (customer ``index % C``), as a UUID."""
    return f"00000000-0000-4000-8000-{index:012d}"


@dataclass
class Seeded:
    """What the cache holds: the sizes, how long seeding took, and ids pages can be opened with."""

    customers: int
    events: int
    database: str
    seed_seconds: dict[str, float]
    ids: dict[str, str]
    counts: dict[str, int]
    seeded_at: str

    def save(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: Path) -> Seeded:
        return cls(**orjson.loads(path.read_bytes()))


# --- the stores, kept in a directory ---------------------------------------------------------------


class KeptPostgres:
    """A PostgreSQL cluster whose data directory outlives the run (``PostgresCluster`` throws
    its own away): initialised once, then started and stopped on the same directory."""

    def __init__(self, directory: Path, user: str = "ecrm") -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed; use --database sqlite")
        self.directory, self.bin_dir, self.user, self.port = directory, bin_dir, user, 0
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        subprocess.run(list(args), check=True, capture_output=True, user=self.run_as)

    def start(self) -> KeptPostgres:
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.directory.parent, self.directory):
                os.chown(path, entry.pw_uid, entry.pw_gid) if path == self.directory else path.chmod(0o755)
        if not data.exists():
            self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        self.port = free_port()
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.directory / "server.log"), "-o",
                  f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c shared_buffers=256MB", "-w", "start")  # fmt: skip
        return self

    def url(self, database: str = "ecrm") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str = "ecrm") -> None:
        self.execute(f'CREATE DATABASE "{name}"')

    def execute(self, *statements: str) -> None:
        """Statements run outside a transaction (``CREATE DATABASE``), on the ``postgres`` database."""
        import psycopg

        with psycopg.connect(self.url("postgres").replace("+psycopg", ""), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def stop(self) -> None:
        if self.port:
            subprocess.run([str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w",
                            "stop"], capture_output=True, user=self.run_as)  # fmt: skip


@dataclass
class Stores:
    clickhouse: ClickHouseServer
    database_url: str


@contextmanager
def running(directory: Path, database: str, scratch: bool = False) -> Iterator[Stores]:
    """ClickHouse and the relational store on ``directory``'s data, stopped afterwards. With
    ``scratch``, the relational store is a copy made for the run and dropped after it (what
    the app writes, sign-ins and migrations of a newer tree, never reaches the kept store)."""
    directory.mkdir(parents=True, exist_ok=True)
    clickhouse = ClickHouseServer(directory / "clickhouse", directory / "clickhouse.log").start()
    postgres = None
    if database == "postgres":
        fresh = not (directory / "postgres" / "data").exists()
        postgres = KeptPostgres(directory / "postgres").start()
        if fresh:
            postgres.create_database()
    kept = directory / "interaction.sqlite"
    copy = directory / "scratch.sqlite"
    try:
        if postgres is None:
            if scratch:
                shutil.copyfile(kept, copy)
            url = f"sqlite:///{copy if scratch else kept}"
        else:
            url = postgres.url()
            if scratch:
                postgres.execute('DROP DATABASE IF EXISTS "scratch"', 'CREATE DATABASE "scratch" TEMPLATE "ecrm"')
                url = postgres.url("scratch")
        yield Stores(clickhouse, url)
    finally:
        if postgres is not None:
            if scratch:
                postgres.execute('DROP DATABASE IF EXISTS "scratch" WITH (FORCE)')
            postgres.stop()
        copy.unlink(missing_ok=True)
        clickhouse.stop()


def prepared(cache: Path, size: Size, database: str, say: Any = print) -> tuple[Path, Seeded, bool]:
    """The cached store for these sizes (seeded now when missing): its directory, what it holds
    and whether it was reused."""
    directory = cache / size.key(database)
    marker = directory / "seeded.json"
    if marker.exists():
        return directory, Seeded.load(marker), True
    shutil.rmtree(directory, ignore_errors=True)  # a seed cut off halfway: start again
    directory.mkdir(parents=True)
    with running(directory, database) as stores:
        seeded = seed(stores, size, database, say)
    seeded.save(marker)
    return directory, seeded, False


# --- ClickHouse ------------------------------------------------------------------------------------

_U = "(cityHash64(number, {salt}) / 18446744073709551615.0)"
"""A uniform draw in [0, 1] from the row's number (the same rows every time)."""


def _events_sql(size: Size, start: int, count: int) -> str:
    c, a = size.customers, ACTIONS_PER_CUSTOMER
    return f"""
INSERT INTO {DB}.events (message_id, customer_id, user_id, anonymous_id, type, event, timestamp, sent_at,
    received_at, properties, traits, context, source_partition, source_offset, name, category)
SELECT
    concat('m-', toString(number)),
    if(anonymous, concat('a', toString(n)), concat('c', toString(n))),
    if(anonymous, '', concat('c', toString(n))),
    concat('a', toString(n)),
    multiIf(k < 370, 'page', k < 950, 'track', 'identify'),
    multiIf(k < 370, '', k < 570, 'Product Viewed', k < 620, 'Element Clicked', k < 670, 'Product Added',
            k < 700, 'Order Completed', k < 780, 'Email Sent', k < 855, 'Email Delivered', k < 905, 'Email Opened',
            k < 925, 'Email Link Clicked', k < 928, 'Email Bounced', k < 930, 'Unsubscribed',
            k < 940, 'NPS Answered', k < 950, 'Survey Answered', ''),
    ts, ts, ts,
    multiIf(
        k < 370, concat('{{"path":"/', page, '","title":"', page, '"}}'),
        k < 700, concat('{{"product_id":"p', toString(h % 500), '","name":"Product ', toString(h % 500),
                        '","price":', toString(5 + h % 195), if(k >= 670, concat(',"order_id":"o-', toString(number),
                        '","total":', toString(20 + h % 480)), ''), '}}'),
        k < 930, concat('{{"email_id":"00000000-0000-4000-8000-', leftPad(toString(n + (h % {a}) * {c}), 12, '0'),
                        '","rule_id":"', ['welcome-on-first-identify', 'thanks-for-order', 'cart-reminder'][h % 3 + 1],
                        '"}}'),
        k < 950, concat('{{"score":', toString(h % 11), '}}'),
        '{{}}'),
    if(k >= 950, concat('{{"email":"c', toString(n), '@example.com","firstName":"Customer"}}'), '{{}}'),
    '{{"ip":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64)","library":{{"name":"analytics.js"}}}}',
    toUInt16(n % 12), number,
    if(k < 370, page, ''), if(k < 370, ['home', 'catalog', 'catalog', 'checkout', 'account'][h % 5 + 1], '')
FROM (
    SELECT number,
           toUInt32(least({c - 1}, floor({c} * pow({_U.format(salt=1)}, 2.5)))) AS n,
           cityHash64(number, 2) % 1000 AS k,
           cityHash64(number, 3) AS h,
           (n % 10 < 3) AND (cityHash64(number, 4) % 5 = 0) AS anonymous,
           ['Home', 'Category', 'Product', 'Cart', 'Account'][h % 5 + 1] AS page,
           toDateTime64('{_now()}', 3, 'UTC') - toIntervalSecond(cityHash64(number, 5) % 31536000) AS ts
    FROM numbers({start}, {count})
)"""


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat(sep=" ")


def _profiles_sql() -> str:
    rfm = "[" + ", ".join(f"'{s}'" for s in RFM) + "]"
    lifecycle = "[" + ", ".join(f"'{s}'" for s in LIFECYCLE) + "]"
    return f"""
INSERT INTO {DB}.profiles (customer_id, user_id, anonymous_id, email, traits, traits_updated_at, first_seen, last_seen,
    event_count, event_counts, page_views, page_views_by_name, page_views_by_category, orders, revenue, email_sent,
    email_opened, email_clicked, email_bounced,
    surveys_answered, nps_latest, nps_at, version, source_partition, source_offset, first_order_at, last_order_at,
    refunded, last_active_at, typical_interval_days, engagement_raw, engagement_at, traits_as_of, rfm_recency,
    rfm_frequency, rfm_monetary, rfm_segment, engagement_score, nps_category, nps_trend, churn_ratio, churn_risk,
    lifecycle_stage, loyalty_points, loyalty_tier, merged_into)
SELECT
    customer, customer, concat('a', substring(customer, 2)), concat(customer, '@example.com'),
    concat('{{"email":"', customer, '@example.com","firstName":"Customer","lastName":"', substring(customer, 2),
           '","plan":"', ['free', 'pro', 'team'][h % 3 + 1], '","newsletter":', if(h % 20 < 7, 'true', 'false'), '}}'),
    min(timestamp) AS min_at, min_at, max(timestamp) AS max_at,
    count(), sumMap(map(if(type = 'track', event, type), toUInt64(1))),
    countIf(type = 'page'),
    mapFilter((k, v) -> v > 0, sumMap(map(if(type = 'page', name, ''), toUInt64(type = 'page')))),
    mapFilter((k, v) -> v > 0, sumMap(map(if(type = 'page', category, ''), toUInt64(type = 'page')))),
    countIf(event = 'Order Completed'),
    toDecimal128(sumIf(JSONExtractFloat(properties, 'total'), event = 'Order Completed'), 4),
    countIf(event = 'Email Sent'), countIf(event = 'Email Opened'), countIf(event = 'Email Link Clicked'),
    countIf(event = 'Email Bounced'), countIf(event IN ('Survey Answered', 'NPS Answered')),
    if(countIf(event = 'NPS Answered') > 0, toUInt8(h % 11), NULL),
    if(countIf(event = 'NPS Answered') > 0, max_at, NULL),
    count(), 0, 0,
    if(countIf(event = 'Order Completed') > 0, minIf(timestamp, event = 'Order Completed'), NULL),
    if(countIf(event = 'Order Completed') > 0, maxIf(timestamp, event = 'Order Completed'), NULL),
    toDecimal128(0, 4), max_at, 7.5, 12.0, max_at, max_at,
    toUInt8(1 + h % 5), toUInt8(1 + intDiv(h, 5) % 5), toUInt8(1 + intDiv(h, 25) % 5),
    {rfm}[h % {len(RFM)} + 1], toUInt8(h % 101),
    multiIf(h % 25 = 0, 'detractor', h % 3 = 0, 'promoter', 'passive'), ['up', 'down', 'flat'][h % 3 + 1],
    (h % 300) / 100.0, multiIf(h % 10 = 0, 'high', h % 10 < 4, 'medium', 'low'),
    {lifecycle}[h % 5 + 1], toUInt64(h % 6000),
    multiIf(h % 6000 >= 5000, 'platinum', h % 6000 >= 2000, 'gold', h % 6000 >= 500, 'silver', 'bronze'), ''
FROM (
    SELECT concat('c', substring(customer_id, 2)) AS customer, cityHash64(customer) AS h, type, event, properties,
           timestamp, name, category
    FROM {DB}.events
)
GROUP BY customer, h"""


def seed_clickhouse(client: Any, size: Size, say: Any) -> dict[str, float]:
    """The warehouse's tables, generated by ClickHouse; seconds per table."""
    seconds: dict[str, float] = {}
    migrate_clickhouse(client, DB)
    c = size.customers
    started = time.perf_counter()
    step = 1_000_000
    for start in range(0, size.events, step):
        client.command(_events_sql(size, start, min(step, size.events - start)))
        say(f"seed: {min(start + step, size.events):,} of {size.events:,} events")
    seconds["events"] = time.perf_counter() - started
    began = time.perf_counter()
    client.command(_profiles_sql())  # folded from the events, by ClickHouse
    client.command(f"""
        INSERT INTO {DB}.profiles (customer_id, anonymous_id, first_seen, last_seen, event_count, version,
            source_partition, source_offset, refunded, revenue, engagement_raw, engagement_score, loyalty_points,
            merged_into)
        SELECT concat('a', toString(number)), concat('a', toString(number)), now64(3), now64(3), 1, 1, 0, 0, 0, 0, 0,
               0, 0, concat('c', toString(number))
        FROM numbers({c}) WHERE number % 10 < 3""")
    seconds["profiles"] = time.perf_counter() - began
    began = time.perf_counter()
    client.command(f"""
        INSERT INTO {DB}.identity_links (anonymous_id, user_id, state, message_id, changed_at, actor, version)
        SELECT concat('a', toString(number)), concat('c', toString(number)), 'merged',
               concat('m-link-', toString(number)), now64(3) - toIntervalDay(number % 300), 'aggregator', 1
        FROM numbers({c}) WHERE number % 10 < 3""")
    client.command(f"""
        INSERT INTO {DB}.identity_merges (at, action, anonymous_id, user_id, message_id, actor, reason)
        SELECT now64(3) - toIntervalDay(number % 300), 'merged', concat('a', toString(number)),
               concat('c', toString(number)), concat('m-link-', toString(number)), 'aggregator', 'identify'
        FROM numbers({c}) WHERE number % 10 < 3""")
    seconds["identity"] = time.perf_counter() - began
    began = time.perf_counter()
    for index, (segment_id, name, share, condition) in enumerate(SEGMENTS):
        definition = parse_definition({"id": segment_id, "name": name, "condition": condition})
        client.insert(f"{DB}.segment_definitions", [[segment_id, name, "", definition.model_dump_json(), 0,
                                                     datetime.now(UTC), 1]],
                      column_names=["segment_id", "name", "description", "definition", "deleted", "updated_at",
                                    "version"])  # fmt: skip
        members = f"cityHash64(number, {index + 10}) % 10000 < {int(share * 10000)}"
        exited = f"cityHash64(number, {index + 10}) % 10000 < {int(share * 12000)}"  # a fifth more left it
        client.command(f"""
            INSERT INTO {DB}.segment_membership (segment_id, customer_id, is_member, changed_at, reason, version)
            SELECT '{segment_id}', concat('c', toString(number)), {members},
                   now64(3) - toIntervalMinute(cityHash64(number, 99) % 129600), '{name}', 1
            FROM numbers({c}) WHERE {exited}""")
        client.command(f"""
            INSERT INTO {DB}.segment_changes (at, segment_id, segment_name, customer_id, change, trigger, reason,
                event_id)
            SELECT now64(3) - toIntervalMinute(cityHash64(number, 98) % 129600 + j * 1440),
                   '{segment_id}', '{name}', concat('c', toString(number)),
                   if(j % 2 = 0, 'entered', 'exited'), 'event', '{name}',
                   concat('m-', toString(number), '-', toString(j))
            FROM numbers({c}) ARRAY JOIN range(if({members}, 3, 2)) AS j WHERE {exited}""")
    seconds["segments"] = time.perf_counter() - began
    began = time.perf_counter()
    for table in ("profiles", "identity_links", "segment_membership", "segment_definitions"):
        client.command(f"OPTIMIZE TABLE {DB}.{table} FINAL")  # as a server that has merged settles
    seconds["optimize"] = time.perf_counter() - began
    return seconds


# --- the relational store --------------------------------------------------------------------------


def _copy(engine: Any, table: Any, columns: Sequence[str], rows: Iterator[Sequence[Any]]) -> int:
    """Bulk insert: ``COPY`` on PostgreSQL, ``executemany`` in chunks on SQLite."""
    count = 0
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            raw.driver_connection.commit()
        finally:
            raw.close()
        return count
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(dict(zip(columns, row, strict=True)))
            if len(chunk) == 20_000:
                conn.execute(table.insert(), chunk)
                count, chunk = count + len(chunk), []
        if chunk:
            conn.execute(table.insert(), chunk)
            count += len(chunk)
    return count


def seed_relational(url: str, client: Any, size: Size) -> tuple[dict[str, float], dict[str, int], dict[str, str]]:
    """The interaction service's tables (migrated with its Alembic migrations): seconds and rows per
    table, and the ids the pages are opened with."""
    from ecrm_interaction.engine.contact_policy import address_digest
    from ecrm_interaction.engine.rules_file import load_rules_file
    from ecrm_interaction.storage import models, users
    from ecrm_interaction.storage import rules as rule_store
    from ecrm_interaction.storage.store import Store, make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    store = Store(engine)
    spec = load_rules_file(RULES_FILE)
    store.write(rule_store.upsert_rules, spec.templates, spec.rules, "bench")
    if spec.loyalty is not None:
        store.write(rule_store.set_loyalty_program, spec.loyalty, "bench")
    store.write(users.add_user, ADMIN_EMAIL, "Bench Admin", "admin", ADMIN_PASSWORD, "bench")
    rule_ids = [r.id for r in spec.rules]
    email_rules = [r.id for r in spec.rules if any(a.kind == "email" for a in r.actions)] or rule_ids
    templates = {t.id: t for t in spec.templates}
    now = datetime.now(UTC)
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    c = size.customers

    def timed(name: str, model: Any, columns: Sequence[str], rows: Iterator[Sequence[Any]]) -> None:
        began = time.perf_counter()
        counts[name] = _copy(engine, model.__table__, columns, rows)
        seconds[name] = time.perf_counter() - began

    profiles = client.query(
        f"SELECT customer_id, email, traits, first_seen, last_seen, event_count, page_views, orders, revenue, "
        f"email_sent, email_opened, email_clicked, nps_latest, rfm_segment, engagement_score, nps_category, "
        f"churn_risk, lifecycle_stage, loyalty_points, loyalty_tier FROM {DB}.customer_profiles"
    ).result_rows

    def profile_json(row: Sequence[Any]) -> str:
        (customer_id, email, traits, first_seen, last_seen, events, pages, orders, revenue, sent, opened, clicked,
         nps, rfm, engagement, nps_category, churn, lifecycle, points, tier) = row  # fmt: skip
        return orjson.dumps({
            "customer_id": customer_id, "user_id": customer_id, "anonymous_id": f"a{customer_id[1:]}", "email": email,
            "traits": orjson.loads(traits or "{}"), "first_seen": first_seen, "last_seen": last_seen,
            "event_count": events, "page_views": pages, "orders": orders, "revenue": str(revenue),
            "email_sent": sent, "email_opened": opened, "email_clicked": clicked, "nps_latest": nps,
            "computed": {"as_of": last_seen, "rfm_segment": rfm or None, "engagement_score": engagement,
                         "nps_category": nps_category or None, "churn_risk": churn or None,
                         "lifecycle_stage": lifecycle or "prospect", "loyalty_points": points,
                         "loyalty_tier": tier or "bronze"},
            "version": events,
        }).decode()  # fmt: skip

    CustomerProfile.model_validate_json(profile_json(profiles[0]))  # what pages parse must parse
    timed("customers", models.Customer, ("customer_id", "profile", "profile_version", "email", "updated_at"),
          ((r[0], profile_json(r), r[5], r[1], now) for r in profiles))  # fmt: skip
    timed("consents", models.Consent, ("customer_id", "channel", "granted", "purpose", "source", "updated_at"),
          ((f"c{n}", "email", n % 10 != 9, "marketing", "signup-form", now - timedelta(days=n % 365))
           for n in range(c)))  # fmt: skip
    memberships = client.query(
        f"SELECT customer_id, segment_id, reason, member_since FROM {DB}.segment_members"
    ).result_rows
    timed("customer_segments", models.CustomerSegment, ("customer_id", "segment_id", "segment_name", "since"),
          ((m[0], m[1], m[2], m[3]) for m in memberships))  # fmt: skip

    def actions() -> Iterator[Sequence[Any]]:
        for index in range(c * ACTIONS_PER_CUSTOMER):
            n = index % c
            rule = email_rules[index % len(email_rules)]
            template = next(iter(templates.values()))
            status, reason = "sent", None
            if index % 50 == 0:
                status, reason = "suppressed", "frequency_cap"
            elif index % 97 == 0:
                status, reason = "failed", "smtp: 550 mailbox unavailable"
            elif index % 131 == 0:
                status = "waiting"
            at = now - timedelta(minutes=(index * 37) % 525_600)
            payload = orjson.dumps({
                "action": {"kind": "email", "template": template.id}, "rule_name": rule,
                "profile": {"customer_id": f"c{n}", "email": f"c{n}@example.com",
                            "traits": {"firstName": "Customer", "lastName": str(n)}},
                "trigger": {"message_id": f"m-{index}", "type": "track", "event": "Order Completed",
                            "properties": {"order_id": f"o-{index}", "total": 20 + index % 480}},
                "reason": f"rule {rule} matched Order Completed",
            }).decode()  # fmt: skip
            sent = status == "sent"
            done = at if status in ("sent", "failed") else None
            yield (action_id(index), f"{rule}:c{n}:{index}", rule, f"c{n}", "email", "marketing", f"m:m-{index}",
                   status, reason, at, payload, f"c{n}@example.com", template.subject, int(sent),
                   "sent" if sent else None, at, at, done)  # fmt: skip

    timed("actions", models.Action, ("id", "dedup_key", "rule_id", "customer_id", "kind", "category", "cause",
                                     "status", "reason", "due_at", "payload", "recipient", "subject", "attempts",
                                     "published", "created_at", "updated_at", "done_at"), actions())  # fmt: skip
    reasons = ("cooldown", "conditions_not_met", "max_event_age", "superseded")
    timed("skipped_decisions", models.SkippedDecision,
          ("id", "rule_id", "customer_id", "reason", "detail", "cause", "count", "first_at", "last_at"),
          ((f"00000000-0000-4000-9000-{n:012d}", rule_ids[n % len(rule_ids)], f"c{n}", reasons[n % 4],
            f"{reasons[n % 4].replace('_', ' ')} (bench)", f"m:m-{n}", 1 + n % 5, now - timedelta(days=n % 90),
            now - timedelta(hours=n % 240)) for n in range(c)))  # fmt: skip
    timed("event_outbox", models.OutboxEvent,
          ("id", "customer_id", "name", "message_id", "properties", "created_at", "published_at"),
          ((f"00000000-0000-4000-a000-{i:012d}", f"c{i % c}", "Email Sent", f"ecrm-interaction-{action_id(i)}",
            orjson.dumps({"email_id": action_id(i)}).decode(), now - timedelta(minutes=i % 100_000),
            now - timedelta(minutes=i % 100_000)) for i in range(c // 2)))  # fmt: skip
    cases = max(10, c // 50)

    def opened(i: int) -> datetime:  # over the last ten days: about a third of the open ones past their SLA
        return now - timedelta(hours=(i * 7) % 240)

    priorities, statuses = ("low", "normal", "high", "urgent"), ("open", "open", "pending", "resolved")
    timed("cases", models.Case,
          ("id", "customer_id", "subject", "priority", "status", "assignee", "sla_due_at", "escalated_at", "rule_id",
           "created_at", "updated_at", "resolved_at"),
          ((f"00000000-0000-4000-b000-{i:012d}", f"c{(i * 47) % c}", f"Detractor follow-up #{i}", priorities[i % 4],
            statuses[i % 4], None if i % 3 else "agent@example.com", opened(i) + timedelta(hours=24 + i % 48),
            now if i % 17 == 0 else None, "detractor-case" if i % 2 else None, opened(i),
            opened(i) + timedelta(hours=2), now if statuses[i % 4] == "resolved" else None)
           for i in range(cases)))  # fmt: skip
    timed(
        "case_notes",
        models.CaseNote,
        ("id", "case_id", "author", "text", "created_at"),
        (
            (
                f"00000000-0000-4000-c000-{i:012d}",
                f"00000000-0000-4000-b000-{i // 3:012d}",
                "agent@example.com",
                f"Called the customer, note {i % 3 + 1}.",
                now - timedelta(hours=i % 500),
            )
            for i in range(cases * 3)
        ),
    )
    timed("loyalty_ledger", models.LoyaltyEntry, ("id", "customer_id", "points", "reason", "rule_id", "dedup_key",
                                                  "at"),
          ((f"00000000-0000-4000-d000-{i:012d}", f"c{i % c}", (i % 7) * 20 - 20 if i % 11 == 0 else 20 + i % 200,
            "Order Completed" if i % 11 else "redeemed", None, f"points:{i}", now - timedelta(hours=i % 8000))
           for i in range(c * 3)))  # fmt: skip
    timed(
        "rewards",
        models.Reward,
        ("id", "customer_id", "reward", "code", "points_cost", "rule_id", "dedup_key", "issued_at"),
        (
            (
                f"00000000-0000-4000-e000-{i:012d}",
                f"c{(i * 20) % c}",
                "gold-welcome-voucher",
                f"GOLD-{i:08d}",
                0,
                "gold-reward",
                f"reward:{i}",
                now - timedelta(days=i % 300),
            )
            for i in range(max(1, c // 20))
        ),
    )
    timed("address_suppressions", models.AddressSuppression,
          ("address_digest", "reason", "source", "suppressed_at"),
          ((address_digest(f"c{(i * 97) % c}@example.com"), "hard_bounce" if i % 4 else "complaint",
            f"event:Email Bounced:m-{i}", now - timedelta(days=i % 200)) for i in range(max(1, c // 100))))  # fmt: skip
    entities: list[tuple[str, Callable[[int], str]]] = [
        ("rule", lambda i: rule_ids[i % len(rule_ids)]),
        ("template", lambda i: list(templates)[i % len(templates)]),
        ("case", lambda i: f"00000000-0000-4000-b000-{i % cases:012d}"),
        ("consent", lambda i: f"c{i % c}"),
        ("segment", lambda i: SEGMENTS[i % len(SEGMENTS)][0]),
        ("console_user", lambda i: ADMIN_EMAIL),
    ]
    timed("audit_log", models.AuditEntry, ("id", "at", "actor", "action", "entity", "entity_id", "detail"),
          ((f"00000000-0000-4000-f000-{i:012d}", now - timedelta(minutes=i * 3), "marketer@example.com",
            "update" if i % 3 else "create", entities[i % 6][0], entities[i % 6][1](i),
            orjson.dumps({"before": {"enabled": i % 2 == 0}, "after": {"enabled": i % 2 == 1}}).decode())
           for i in range(max(1, c // 5))))  # fmt: skip
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    busiest = client.query(
        f"SELECT customer_id, count() AS n FROM {DB}.customer_events GROUP BY customer_id ORDER BY n DESC LIMIT 1"
    ).result_rows[0]
    typical = client.query(
        f"SELECT customer_id FROM {DB}.customer_profiles ORDER BY event_count LIMIT 1 OFFSET {c // 2}"
    ).result_rows[0][0]
    ids = {
        "customer_id": str(busiest[0]),
        "typical_customer_id": str(typical),
        "segment_id": SEGMENTS[0][0],
        "rule_id": email_rules[0],
        "template_id": next(iter(templates)),
        "case_id": "00000000-0000-4000-b000-000000000000",
        "action_id": action_id(int(str(busiest[0])[1:])),
        "email_id": action_id(int(str(busiest[0])[1:])),
        "email": ADMIN_EMAIL,
        "reward_id": "00000000-0000-4000-e000-000000000000",
        "tier": "gold",
    }
    counts["busiest_customer_events"] = int(busiest[1])
    return seconds, counts, ids


def seed(stores: Stores, size: Size, database: str, say: Any) -> Seeded:
    client = stores.clickhouse.client(tz_mode="aware", send_receive_timeout=3600)
    began = time.perf_counter()
    seconds = {f"clickhouse.{k}": round(v, 1) for k, v in seed_clickhouse(client, size, say).items()}
    seconds["clickhouse"] = round(time.perf_counter() - began, 1)
    say("seed: the relational store")
    began = time.perf_counter()
    relational, counts, ids = seed_relational(stores.database_url, client, size)
    seconds |= {f"{database}.{k}": round(v, 1) for k, v in relational.items()}
    seconds[database] = round(time.perf_counter() - began, 1)
    counts |= {f"clickhouse.{t}": int(n) for t, n in client.query(
        "SELECT table, sum(rows) FROM system.parts WHERE database = {db:String} AND active GROUP BY table",
        parameters={"db": DB}).result_rows}  # fmt: skip
    return Seeded(size.customers, size.events, database, seconds, ids, counts,
                  datetime.now(UTC).isoformat(timespec="seconds"))  # fmt: skip
