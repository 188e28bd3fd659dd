"""Pipeline health as people read it: what each service's Prometheus metrics say (this
service's own registry, and the endpoints ``INTERACTION_METRICS_URLS`` names), what ClickHouse
last stored and at what rate, and what waits here (actions, the outbox).

Every figure is read when asked, nothing is sampled in the background: counters are totals
since each service started; the rate of events in is ClickHouse's count per minute of what
arrived in the last hour (``received_at``), which survives restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, Request
from prometheus_client import REGISTRY, Metric
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from ecrm_interaction.api.deps import SettingsDep, StoreDep, Viewer
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.storage import actions, outbox
from ecrm_interaction.storage.store import aware

FIGURES: dict[str, tuple[tuple[str, str], ...]] = {
    "collector": (
        ("ecrm_collector_events_accepted", "events accepted"),
        ("ecrm_collector_events_rejected", "events rejected (dead-lettered)"),
        ("ecrm_collector_produce_failures", "requests refused: Kafka did not acknowledge"),
        ("ecrm_collector_rate_limited", "requests over their rate (429)"),
        ("ecrm_collector_producer_queue_records", "records waiting for Kafka"),
    ),
    "aggregator": (
        ("ecrm_aggregator_events_consumed", "events consumed"),
        ("ecrm_aggregator_events_written", "events written to ClickHouse"),
        ("ecrm_aggregator_dead_letters", "dead letters"),
        ("ecrm_aggregator_consumer_lag", "consumer lag (events not processed yet)"),
        ("ecrm_aggregator_write_retries", "ClickHouse writes retried"),
    ),
    "interaction": (
        ("ecrm_interaction_profile_changes", "profile changes consumed"),
        ("ecrm_interaction_dead_letters", "dead letters"),
        ("ecrm_interaction_case_escalations", "cases escalated"),
    ),
}
"""Per service, the metric families shown (summed over their labels) and what they mean."""

EVENTS_PER_MINUTE = """
SELECT toUnixTimestamp(toStartOfMinute(received_at)) AS minute, count() AS events
FROM {db}.events
WHERE received_at >= now64(3) - INTERVAL 60 MINUTE
GROUP BY minute
ORDER BY minute
"""
LAST_RECEIVED = "SELECT max(received_at) AS last FROM {db}.events"


class Figure(BaseModel):
    name: str
    label: str
    value: float | None


class ServiceHealth(BaseModel):
    name: str
    url: str | None
    up: bool
    error: str = ""
    figures: list[Figure]


class ClickHouseHealth(BaseModel):
    configured: bool
    last_received_at: datetime | None = None
    per_minute: list[tuple[int, int]] = []
    """(minute as epoch seconds, events that arrived in it) over the last hour."""
    per_second: float | None = None
    """Events per second that arrived over the last 5 minutes."""
    error: str = ""


class Pipeline(BaseModel):
    services: list[ServiceHealth]
    lag: float | None
    """The aggregator's consumer lag (events on the events topic not processed yet), if it was read."""
    clickhouse: ClickHouseHealth
    actions_waiting: dict[str, int]
    outbox_waiting: int
    outbox_oldest: datetime | None


def figures_of(service: str, text: str) -> list[Figure]:
    """The service's :data:`FIGURES` from its exposition text (sums over labels; None when absent)."""
    return _figures(service, text_string_to_metric_families(text))


def _figures(service: str, families: Iterable[Metric]) -> list[Figure]:
    wanted = {name for name, _label in FIGURES.get(service, ())}
    sums: dict[str, float] = {}
    for family in families:
        if family.name.removesuffix("_total") not in wanted:
            continue
        for sample in family.samples:
            name = sample.name.removesuffix("_total")
            if name in wanted:
                sums[name] = sums.get(name, 0.0) + float(sample.value)
    return [Figure(name=name, label=label, value=sums.get(name)) for name, label in FIGURES.get(service, ())]


async def _scrape(client: httpx.AsyncClient, name: str, url: str) -> ServiceHealth:
    try:
        answer = await client.get(url)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        return ServiceHealth(name=name, url=url, up=False, error=type(exc).__name__, figures=[])
    return ServiceHealth(name=name, url=url, up=True, figures=figures_of(name, answer.text))


async def _clickhouse(warehouse: Warehouse | None) -> ClickHouseHealth:
    if warehouse is None:
        return ClickHouseHealth(configured=False)
    try:
        last = await warehouse.query(LAST_RECEIVED)
        minutes = await warehouse.query(EVENTS_PER_MINUTE)
    except Exception as exc:  # a health page shows a dependency that is down; it does not fail
        return ClickHouseHealth(configured=True, error=type(exc).__name__)
    moment = last[0]["last"] if last else None
    if moment is not None and moment.timestamp() <= 0:
        moment = None  # max() of no rows is the epoch
    per_minute = [(int(r["minute"]), int(r["events"])) for r in minutes]
    since = time.time() - 300
    # The minute that began before the window counts for its share of it.
    recent = sum(n * min(1.0, max(0.0, (minute + 60 - since) / 60)) for minute, n in per_minute)
    return ClickHouseHealth(configured=True, last_received_at=aware(moment) if moment else None,
                            per_minute=per_minute, per_second=round(recent / 300, 2))  # fmt: skip


def _waiting(session: Any) -> tuple[dict[str, int], int, datetime | None]:
    sizes = actions.queue_sizes(session)
    count, oldest = outbox.backlog(session)
    return {str(status.value): n for status, n in sizes.items()}, count, aware(oldest) if oldest else None


def _scraper(request: Request) -> httpx.AsyncClient:
    """One client for the app's scrapes (making one costs more than a scrape)."""
    client: httpx.AsyncClient | None = getattr(request.app.state, "metrics_scraper", None)
    if client is None:
        client = request.app.state.metrics_scraper = httpx.AsyncClient(timeout=2.0)
    return client


def router() -> APIRouter:
    routes = APIRouter(tags=["operations"])

    @routes.get("/v1/pipeline")
    async def pipeline(_who: Viewer, request: Request, settings: SettingsDep, store: StoreDep) -> Pipeline:
        """Each service's figures, ClickHouse's last event and rate, what waits here."""
        own = ServiceHealth(name="interaction", url=None, up=True, figures=_figures("interaction", REGISTRY.collect()))
        urls = settings.metrics_urls()
        scraped: list[ServiceHealth] = []
        if urls:
            client = _scraper(request)
            scraped = list(await asyncio.gather(*(_scrape(client, n, u) for n, u in urls.items())))
        clickhouse = await _clickhouse(request.app.state.warehouse)
        waiting, outbox_count, oldest = await asyncio.to_thread(store.read, _waiting)
        lags = [f.value for s in scraped for f in s.figures if f.name == "ecrm_aggregator_consumer_lag"]
        return Pipeline(services=[*scraped, own], lag=lags[0] if lags else None, clickhouse=clickhouse,
                        actions_waiting=waiting, outbox_waiting=outbox_count, outbox_oldest=oldest)  # fmt: skip

    return routes
