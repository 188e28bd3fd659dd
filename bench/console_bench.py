"""Every console page against the speed goal: rendered server-side in < 300 ms p95 with 100,000
customers and 10 million events stored.

``make bench-console`` (``BENCH_ARGS=--quick``: 10,000 customers and 1 million events):

1. the store (:mod:`bench.console_seed`): ClickHouse (chdb, migrated like production) and the
   relational store (PostgreSQL by default, ``--database sqlite`` for the embedded default),
   seeded once per size and kept in ``--cache`` (``.ecrm/bench-console/``) for the next runs;
2. the interaction app as ``ecrm-interaction serve`` builds it, without the consumer and the
   dispatcher: ``create_app`` with a :class:`Warehouse` on that ClickHouse, the segment
   definitions of the warehouse, under uvicorn on a free port, in a process of its own;
3. an admin signs in (``POST /v1/sessions``) and every GET route of the console's role table
   (``console.access.PAGES``, gathered as ``console.app.install`` gathers it: a page that lands
   joins the bench by joining the table) is requested ``--warmup`` times, then ``--requests``
   times one after another, its path parameters filled with ids of the seeded store
   (:data:`PARAMETERS`: the busiest customer, the largest segment, a rule, a case…) and, for
   pages listed in :data:`VARIANTS`, with each of their query strings too (a search, a filter).

Reported per page: p50, p95 and max (ms, request sent to response read, over loopback) and
p95 over the 300 ms ceiling; a page slower than the ceiling or answering anything but 200 fails
the run (exit status 1). Writes ``bench/results/console-<UTC time>.json`` and ``.md``.

    uv run --frozen python -m bench.console_bench run --quick
    uv run --frozen python -m bench.console_bench run --customers 100000 --events 10000000
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from bench import report
from bench.console_seed import ADMIN_EMAIL, ADMIN_PASSWORD, DB, FULL, QUICK, Size, prepared, running
from bench.open_loop import percentile
from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_embedded.net import free_port, wait_http_ok
from ecrm_schemas.sources import editing

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(__file__).resolve().parents[1] / ".ecrm" / "bench-console"
CEILING_MS = report.CONSOLE_CEILING_MS
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0] if __doc__ else None)
console = Console(stderr=True)

PARAMETERS: dict[str, str] = {
    "customer_id": "customer_id",
    "segment_id": "segment_id",
    "rule_id": "rule_id",
    "template_id": "template_id",
    "case_id": "case_id",
    "action_id": "action_id",
    "email_id": "email_id",
    "message_id": "action_id",
    "email": "email",
    "user_email": "email",
    "reward_id": "reward_id",
    "tier": "tier",
    "version": "template_version",
    "name": "report_name",
    "position": "panel_position",
    "article_id": "article_id",
}
"""A console path parameter → the seeded id it is filled with (:attr:`Seeded.ids`). A parameter
named otherwise is filled from the API's list of that resource (``{broadcast_id}`` → the first
``id`` of ``GET /v1/broadcasts``), else the page is reported as an error, naming it."""

DOWNLOADS = re.compile(r"(/export|\.csv)$")
"""Console routes that answer a file to save (a customer's export, a CSV of members), not a page:
measured and reported, not held to the ceiling."""

DOWNLOAD_REQUESTS = 5

ALWAYS = {"template_version": "1", "report_name": "revenue", "panel_position": "0", "article_id": "returns-policy"}
"""Ids every store has, seeded or not (a template's first version, a report, a dashboard's first
panel, an article of the example knowledge base the served app imports)."""
CHAT_KEY = "wkb_bench_console_website"
EXAMPLE_KNOWLEDGE = (
    Path(__file__).resolve().parent.parent / "services" / "interaction" / "examples" / "knowledge_base.yaml"
)

VARIANTS: dict[str, tuple[str, ...]] = {
    "/console/customers": ("", "q={email_of_customer}", "q=Customer", "segment={segment_id}", "stage=active",
                           "rfm=champions", "tier=gold", "offset=2000"),
    "/console/customers/{customer_id}": ("", "@typical_customer_id"),
    "/console/segments/{segment_id}/members": ("", "page=50"),
    "/console/data/audit": ("", "entity=case"),
    "/console/reports/{name}/customers": ("cell=all",),
}  # fmt: skip
"""Pages measured more than once: each query string (``{id}`` filled as in :data:`PARAMETERS`),
``@name`` for the page with its customer parameter set to that seeded id instead. A variant of a
page not in the role table is left out."""


# --- which pages ---------------------------------------------------------------------------------


def console_pages() -> dict[str, str]:
    """Every GET route of the console's role table → its least role, as the app gathers the table
    (``console.app.install`` on an app: each ``pages/`` module's rows)."""
    from fastapi import FastAPI

    from ecrm_interaction.console import access
    from ecrm_interaction.console.app import install

    install(FastAPI())
    return {path: role for (method, path), role in sorted(access.PAGES.items()) if method == "GET"}


PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def path_parameters(path: str) -> list[str]:
    return PATH_PARAMETER.findall(path)


def api_list_route(name: str) -> str:
    """The API route a parameter without a seeded id is filled from: ``broadcast_id`` → ``/v1/broadcasts``."""
    resource = name.removesuffix("_id").replace("_", "-")
    return f"/v1/{resource}s" if not resource.endswith("s") else f"/v1/{resource}"


@dataclass(frozen=True)
class Target:
    """One measured URL: the page (its route path) and what it is opened with."""

    page: str
    url: str
    variant: str = ""

    @property
    def name(self) -> str:
        return f"{self.page} {self.variant}".strip()


def targets(pages: Iterable[str], ids: dict[str, str], lookup: Callable[[str], str | None]) -> tuple[
        list[Target], dict[str, str]]:  # fmt: skip
    """The URLs to measure, and the pages that could not be opened (→ why)."""
    found: list[Target] = []
    unfilled: dict[str, str] = {}
    for page in pages:
        for variant in VARIANTS.get(page, ("",)):
            values = dict(ids)
            query = variant
            if variant.startswith("@"):
                values["customer_id"] = ids[variant[1:]]
                query = ""
            missing: list[str] = []
            url = page
            for name in path_parameters(page):
                value = values.get(PARAMETERS[name]) if name in PARAMETERS else lookup(name)
                if value is None:
                    missing.append(name)
                    continue
                url = re.sub(r"\{" + re.escape(name) + r"(?::[^}]*)?\}", value, url)
            if missing:
                unfilled[page] = "; ".join(
                    f"no id for {{{name}}}: none seeded (bench.console_bench.PARAMETERS, bench.console_seed) and "
                    f"GET {api_list_route(name)} lists none" for name in missing)  # fmt: skip
                break
            if query:
                url += "?" + query.format(**values)
            found.append(Target(page, url, variant))
    return found, unfilled


# --- serving -------------------------------------------------------------------------------------


@app.command(hidden=True)
def serve(database_url: str, clickhouse_url: str, port: int) -> None:
    """The interaction app as ``ecrm-interaction serve`` builds it, without consumer and dispatcher."""
    import uvicorn

    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.api.services.warehouse import Warehouse
    from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
    from ecrm_interaction.delivery.recommendations import clickhouse_client, clickhouse_services
    from ecrm_interaction.privacy.requests import PrivacyRequests
    from ecrm_interaction.settings import InteractionSettings
    from ecrm_interaction.storage.store import Store, make_engine, migrate
    from ecrm_schemas.kafka_producer import ReliableProducer
    from ecrm_schemas.segments import parse_definition
    from ecrm_schemas.suppressions import SuppressionList

    settings = InteractionSettings(database_url=database_url, clickhouse_url=clickhouse_url, clickhouse_database=DB,
                                   log_level="WARNING")  # fmt: skip
    engine = make_engine(settings.database_url)
    migrate(engine)  # as the service does at start: a store seeded before a new migration gets it
    store = Store(engine)
    warehouse = Warehouse(clickhouse_client(settings), settings.clickhouse_database)
    definitions = SegmentDefinitions()  # as the definitions topic would have them
    for row in warehouse.rows("SELECT definition FROM {db}.segment_definitions FINAL WHERE deleted = 0"):
        definitions.put(parse_definition(row["definition"]))
    recommender, recent_events = clickhouse_services(settings)
    # Exports read ClickHouse and the store; the producer (erasures only) never reaches a broker here.
    privacy = PrivacyRequests(clickhouse_client(settings), DB, store, ReliableProducer(settings.kafka_client_config()),
                              SuppressionList(), settle_s=0.0)  # fmt: skip
    application = create_app(settings, store, None, None, recommender, recent_events, privacy, definitions, warehouse)
    uvicorn.run(application, host="127.0.0.1", port=port, log_config=None, access_log=False)


class Server:
    """``serve`` in a process of its own, so that the bench's client does not share its core."""

    def __init__(self, database_url: str, clickhouse_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "bench.console_bench", "serve", database_url, clickhouse_url, str(self.port)]
        # The website assistant's pages: the example knowledge base, and a browser source to chat with.
        sources = log.parent / "bench-sources.json"
        with editing(sources) as registry:
            if registry.find(CHAT_KEY) is None:
                registry.add_known_key("bench-website", "browser", CHAT_KEY)
        env = {**os.environ, "INTERACTION_ASSISTANT_KNOWLEDGE_FILE": str(EXAMPLE_KNOWLEDGE),
               "COLLECTOR_SOURCES_FILE": str(sources)}  # fmt: skip
        with open(log, "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_http_ok(f"{self.url}/livez", timeout_s=120)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- measuring -----------------------------------------------------------------------------------


def measure(client: httpx.Client, target: Target, warmup: int, requests: int) -> dict[str, Any]:
    if DOWNLOADS.search(target.page):  # seconds each for a busy customer's export: a few tell enough
        warmup, requests = min(warmup, 1), min(requests, DOWNLOAD_REQUESTS)
    statuses: dict[str, int] = {}
    times: list[float] = []
    size = 0
    for i in range(warmup + requests):
        began = time.perf_counter()
        answer = client.get(target.url)
        elapsed = (time.perf_counter() - began) * 1000
        statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
        size = len(answer.content)
        if answer.status_code != 200:
            break
        if i >= warmup:
            times.append(elapsed)
    figures: dict[str, Any] = {"page": target.page, "variant": target.variant, "url": target.url,
                               "statuses": statuses, "bytes": size, "requests": len(times)}  # fmt: skip
    if set(statuses) != {"200"}:
        return figures | {"error": f"answered {', '.join(sorted(statuses))}"}
    p95 = percentile(times, 95)
    download = bool(DOWNLOADS.search(target.page))
    return figures | {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
                      "max_ms": round(max(times), 1), "ratio_to_ceiling": round(p95 / CEILING_MS, 3),
                      "download": download, "met": True if download else p95 < CEILING_MS}  # fmt: skip


def signed_in(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60, follow_redirects=False)
    answer = client.post("/v1/sessions", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    answer.raise_for_status()
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]  # what a change with the session cookie carries
    return client


def lookup_from_api(client: httpx.Client) -> Callable[[str], str | None]:
    def lookup(name: str) -> str | None:
        answer = client.get(api_list_route(name), params={"limit": 1})
        if answer.status_code != 200:
            return None
        body = answer.json()
        items = body if isinstance(body, list) else next((v for v in body.values() if isinstance(v, list)), [])
        return str(items[0]["id"]) if items and isinstance(items[0], dict) and "id" in items[0] else None

    return lookup


API_LEFT_OUT = frozenset({"/v1/customers/{customer_id}/export"})
"""API routes ``--api`` does not request: an export is a download, not a page."""


def api_paths(client: httpx.Client) -> list[str]:
    """The API's GET routes under ``/v1``, from its OpenAPI document (console pages are left out of it)."""
    paths = client.get("/openapi.json").json()["paths"]
    return sorted(p for p, ops in paths.items() if "get" in ops and p.startswith("/v1/") and p not in API_LEFT_OUT)


def draft_broadcast(client: httpx.Client, ids: dict[str, str]) -> dict[str, Any]:
    """A marketer's draft to the largest seeded segment (``POST /v1/broadcasts``, its audience
    counted as it is saved), for the broadcast pages to open; how long saving it took (a
    change, not a page: for information)."""
    body = {"name": "Bench sale", "segment_id": ids["segment_id"], "template_id": ids["template_id"],
            "holdout_percent": 10, "rate_per_minute": 1000}  # fmt: skip
    started = time.perf_counter()
    answer = client.post("/v1/broadcasts", json=body)
    took_ms = (time.perf_counter() - started) * 1000
    answer.raise_for_status()
    audience = answer.json()["audience"]
    return {"segment_id": ids["segment_id"], "members": audience["members"], "to_send": audience["to_send"],
            "save_ms": round(took_ms, 1)}  # fmt: skip


def conversation(client: httpx.Client) -> None:
    """A visitor's chat (a question answered, one not, a hand-off), for the conversation pages."""
    started = client.post("/v1/chat/conversations", json={"writeKey": CHAT_KEY, "language": "en"})
    started.raise_for_status()
    path = f"/v1/chat/conversations/{started.json()['conversation_id']}"
    headers = {"X-Conversation-Token": started.json()["token"]}
    for question in ("How do I return an item?", "Do you sell garden furniture?"):
        client.post(f"{path}/messages", json={"text": question}, headers=headers).raise_for_status()
    client.post(f"{path}/handoff", headers=headers).raise_for_status()


def saved_reports(client: httpx.Client) -> dict[str, Any]:
    """A marketer's saved report (revenue by segment, the last 30 days) on a dashboard, for the
    saved-report and dashboard pages to open."""
    saved = client.post("/v1/saved-reports", json={"name": "Bench revenue", "report": "revenue", "days": 30,
                                                   "params": {"by": "channel"}})  # fmt: skip
    saved.raise_for_status()
    board = client.post("/v1/dashboards", json={"name": "Bench dashboard", "reports": [saved.json()["id"]]})
    board.raise_for_status()
    return {"saved_report_id": saved.json()["id"], "dashboard_id": board.json()["id"]}


def stage(size: Size, database: str = "postgres", requests: int = 30, warmup: int = 3, cache: Path = CACHE,
          say: Callable[[str], None] = lambda text: console.print(f"  {text}"),
          api: bool = False) -> dict[str, Any]:  # fmt: skip
    """Seed (or reuse) the store, serve the app, measure every page (and with ``api``, every GET
    route of the API, for information: what the pages call); the result's figures."""
    directory, seeded, reused = prepared(cache, size, database, say)
    pages = console_pages()
    load_before = os.getloadavg()
    with running(directory, database, scratch=True) as stores:
        migrate_clickhouse(stores.clickhouse.client(), DB)  # a store seeded before a new migration gets it
        server = Server(stores.database_url, stores.clickhouse.url, directory / "server.log")
        try:
            client = signed_in(server.url)
            broadcast = draft_broadcast(client, seeded.ids)
            saved_reports(client)
            conversation(client)
            ids = ALWAYS | seeded.ids | {"email_of_customer": f"{seeded.ids['customer_id']}@example.com"}
            found, unfilled = targets(pages, ids, lookup_from_api(client))
            measured = []
            for target in found:
                say(f"console: {target.name}")
                measured.append(measure(client, target, warmup, requests))
            api_measured = []
            if api:
                for target in targets(api_paths(client), ids, lambda _name: None)[0]:
                    say(f"API: {target.name}")
                    api_measured.append(measure(client, target, warmup, requests))
            client.close()
        finally:
            server.stop()
    load_after = os.getloadavg()
    failed = [m for m in measured if not m.get("met")]
    return {
        "customers": seeded.customers,
        "events": seeded.events,
        "database": database,
        "ceiling_ms": CEILING_MS,
        "requests_per_page": requests,
        "warmup_per_page": warmup,
        "seed": {
            "seconds": seeded.seed_seconds,
            "counts": seeded.counts,
            "seeded_at": seeded.seeded_at,
            "reused": reused,
            "ids": seeded.ids,
        },
        "pages": sorted(pages),
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "measured": measured,
        "unfilled": unfilled,
        "slowest_p95_ms": max((m["p95_ms"] for m in measured if "p95_ms" in m and not m.get("download")), default=None),
        "passed": not failed and not unfilled,
        "api": api_measured,
        "broadcast": broadcast,
    }


# --- reporting -----------------------------------------------------------------------------------


def table(result: dict[str, Any], key: str = "measured") -> Table:
    what = "Console pages" if key == "measured" else "API routes (for information)"
    out = Table(title=f"{what}, {result['customers']:,} customers and {result['events']:,} events "
                      f"({result['database']}), p95 < {CEILING_MS:.0f} ms")  # fmt: skip
    for column in ("page", "p50 ms", "p95 ms", "max ms", "p95 / ceiling", "KiB", ""):
        out.add_column(column)
    for m in result[key]:
        if "error" in m:
            out.add_row(m["url"], "", "", "", "", "", f"[red]ERROR: {m['error']}[/red]")
            continue
        state = "download" if m.get("download") else "[green]ok[/green]" if m["met"] else "[red]OVER[/red]"
        out.add_row(m["url"], f"{m['p50_ms']:.1f}", f"{m['p95_ms']:.1f}", f"{m['max_ms']:.1f}",
                    f"{m['ratio_to_ceiling']:.2f}", f"{m['bytes'] / 1024:.1f}", state)  # fmt: skip
    for page, why in result["unfilled"].items() if key == "measured" else ():
        out.add_row(page, "", "", "", "", "", f"[red]NOT MEASURED: {why}[/red]")
    return out


@app.command()
def run(
    quick: Annotated[
        bool, typer.Option("--quick", help=f"{QUICK.customers:,} customers, {QUICK.events:,} events.")
    ] = False,
    customers: Annotated[int | None, typer.Option(help=f"Customers (default {FULL.customers:,}).")] = None,
    events: Annotated[int | None, typer.Option(help=f"Events (default {FULL.events:,}).")] = None,
    database: Annotated[str, typer.Option(help="The relational store: postgres or sqlite.")] = "postgres",
    requests: Annotated[int, typer.Option(help="Measured requests per page.")] = 30,
    warmup: Annotated[int, typer.Option(help="Unmeasured requests per page first.")] = 3,
    cache: Annotated[Path, typer.Option(help="Where seeded stores are kept, one per size.")] = CACHE,
    api: Annotated[bool, typer.Option("--api", help="Also every GET route of the API (not judged).")] = False,
    out: Annotated[Path, typer.Option(help="Where the report goes.")] = RESULTS,
) -> None:
    """Seed (once per size), serve, measure every console page; exit 1 when one misses the ceiling."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop ClickHouse, PostgreSQL, the app
    if database not in ("postgres", "sqlite"):
        raise typer.BadParameter("postgres or sqlite", param_hint="--database")
    base = QUICK if quick else FULL
    size = Size(customers or base.customers, events or base.events)
    started = datetime.now(UTC)
    result = stage(size, database, requests, warmup, cache, api=api)
    result |= {"benchmark": "console", "command": "python -m bench.console_bench " + " ".join(sys.argv[1:]),
               "started_at": started.isoformat(timespec="seconds"), "cpus": os.cpu_count()}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    stem = f"console-{started.strftime('%Y%m%dT%H%M%SZ')}"
    (out / f"{stem}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    (out / f"{stem}.md").write_text("\n".join([f"# eCRM console benchmark, {result['started_at']}", "",
                                               *report.console_section(result)]) + "\n")  # fmt: skip
    Console().print(table(result))
    if result["api"]:
        Console().print(table(result, "api"))
    Console().print(f"seed seconds: {result['seed']['seconds']}")
    console.print(f"Written: {out / stem}.json and .md")
    if not result["passed"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
