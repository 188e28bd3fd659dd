"""How long erasing one customer takes with 1M events stored, and how little of ClickHouse it touches.

``make bench-erasure`` (``BENCH_ARGS="--events N --customers N --erase N"``): the real ClickHouse
engine (chdb behind the embedded HTTP server) migrated like production, a tansu broker for the
suppression topic and SQLite for the relational store. The events span twelve months (twelve
partitions, several parts each), a customer has ``events / customers`` of them on average,
and every customer has a profile and an identity link. Each erasure goes through
:class:`ecrm_interaction.privacy.requests.PrivacyRequests`, the code the API and the CLI run,
without its settle wait (that is a fixed delay, reported separately).

Reported: seconds per erasure (median, max), the parts each table had before and after (merged
first, as on a server that has settled), and the patch parts the erasures wrote, against the
bytes stored: no part that holds the rows is rewritten.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ecrm_aggregator.migrate import migrate
from ecrm_embedded.broker import TansuBroker
from ecrm_embedded.net import free_port
from ecrm_embedded.testing import ClickHouseServer
from ecrm_interaction.privacy.requests import PrivacyRequests
from ecrm_interaction.storage.store import Store, make_engine
from ecrm_interaction.storage.store import migrate as migrate_relational
from ecrm_schemas.kafka_admin import ensure_topics
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.suppressions import SuppressionList

RESULTS = Path(__file__).parent / "results"
DB = "ecrm"


def fill(client: Any, events: int, customers: int) -> None:
    """``events`` events over ``customers`` customers and a year, in 10 inserts (10+ parts)."""
    step = max(1, events // 10)
    for start in range(0, events, step):
        client.command(
            f"""INSERT INTO {DB}.events (message_id, customer_id, user_id, anonymous_id, type, event, timestamp,
                received_at, properties, traits, context, source_partition, source_offset)
            SELECT generateUUIDv4(), concat('c', toString(number % {customers})),
                   concat('c', toString(number % {customers})), concat('a', toString(number % {customers})), 'track',
                   'Product Viewed', now64(3) - toIntervalMinute(number % 525600), now64(3),
                   concat('{{"product_id":"p', toString(number % 500), '","price":19.5}}'), '{{}}',
                   '{{"ip":"203.0.113.7","userAgent":"Mozilla/5.0"}}', number % 12, number
            FROM numbers({start}, {min(step, events - start)})"""
        )
    client.command(
        f"""INSERT INTO {DB}.profiles (customer_id, user_id, anonymous_id, email, traits, first_seen, last_seen,
            event_count, version)
        SELECT concat('c', toString(number)), concat('c', toString(number)), concat('a', toString(number)),
               concat('c', toString(number), '@example.com'), '{{"firstName":"Test"}}', now64(3), now64(3), 100, 1
        FROM numbers({customers})"""
    )
    client.command(
        f"""INSERT INTO {DB}.identity_links (anonymous_id, user_id, state, message_id, changed_at, actor, version)
        SELECT concat('a', toString(number)), concat('c', toString(number)), 'merged', toString(number), now64(3),
               'bench', 1
        FROM numbers({customers})"""
    )


def parts(client: Any) -> dict[str, tuple[int, int]]:
    """Active parts and their bytes, by table."""
    rows = client.query(
        "SELECT table, count(), sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active "
        "GROUP BY table",
        parameters={"db": DB},
    ).result_rows
    return {table: (int(n), int(size)) for table, n, size in rows}


def patch_parts(client: Any) -> tuple[int, int]:
    """The patch parts (and their bytes) that erasures wrote: the rows they mask."""
    n, size = client.query(
        "SELECT count(), sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active "
        "AND startsWith(name, 'patch-')",
        parameters={"db": DB},
    ).result_rows[0]
    return int(n), int(size or 0)


def main(
    events: Annotated[int, typer.Option(help="Events stored before erasing.")] = 1_000_000,
    customers: Annotated[int, typer.Option(help="Customers they belong to.")] = 10_000,
    erase: Annotated[int, typer.Option(help="Customers erased one after another.")] = 10,
) -> None:
    with tempfile.TemporaryDirectory(prefix="ecrm-erasure-") as tmp:
        work = Path(tmp)
        clickhouse = ClickHouseServer(work / "ch", work / "ch.log").start()
        broker = TansuBroker(port=free_port(), log_path=work / "broker.log").start()
        try:
            config = {"bootstrap.servers": broker.bootstrap}
            ensure_topics(config)
            client = clickhouse.client(tz_mode="aware")
            migrate(client, DB)
            started = time.perf_counter()
            fill(client, events, customers)
            fill_s = time.perf_counter() - started
            for table in ("events", "profiles", "identity_links"):  # as a server that has merged settles
                client.command(f"OPTIMIZE TABLE {DB}.{table} FINAL")
            engine = make_engine(f"sqlite:///{work}/interaction.db")
            migrate_relational(engine)
            privacy = PrivacyRequests(
                client, DB, Store(engine), ReliableProducer(config), SuppressionList(), settle_s=0.0
            )
            before = parts(client)
            seconds, rows = [], []
            for i in range(erase):
                report = privacy.erase(f"c{i * 7 + 1}", "bench")
                assert not any(report.remaining.values()), report.remaining
                seconds.append(report.seconds)
                rows.append(report.clickhouse_rows["events"])
            after = parts(client)
            new_parts, new_bytes = patch_parts(client)
            result = {
                "events": events,
                "customers": customers,
                "fill_seconds": round(fill_s, 1),
                "erasures": erase,
                "events_per_erased_customer": statistics.mean(rows),
                "seconds_median": round(statistics.median(seconds), 3),
                "seconds_max": round(max(seconds), 3),
                "settle_seconds_added_by_the_service": 2.0,
                "parts_before": before,
                "parts_after": after,
                "patch_parts_written": new_parts,
                "patch_bytes_written": new_bytes,
                "bytes_stored": sum(size for _, size in before.values()),
            }
        finally:
            broker.stop()
            clickhouse.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "erasure.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
