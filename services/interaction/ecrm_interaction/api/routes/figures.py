"""The day's figures for the console's home page: customers, activity, revenue, email, NPS,
cases, dead letters and pipeline lag, each computed where it is kept and cached briefly."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from fastapi import APIRouter, Request
from pydantic import BaseModel

from ecrm_interaction.api.deps import SessionDep, Viewer, settings_of
from ecrm_interaction.api.services.ttl_cache import TtlCache
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.storage import actions, cases
from ecrm_schemas.settings import consumer_config
from ecrm_schemas.topics import ALL_TOPICS, TOPICS_BY_NAME

CACHE_S = 30.0
"""How long the warehouse's and Kafka's figures are reused (the relational ones are always fresh)."""
WINDOW_DAYS = 30

PROFILE_FIGURES = """
SELECT count() AS customers,
       countIf(last_seen >= now64(3) - toIntervalDay({days:UInt16})) AS active,
       toFloat64(sum(revenue)) AS revenue,
       countIf(nps_latest IS NOT NULL) AS nps_answers,
       countIf(nps_latest >= 9) AS promoters,
       countIf(nps_latest <= 6) AS detractors,
       sum(email_sent) AS email_sent,
       sum(email_bounced) AS email_bounced,
       sum(email_opened) AS email_opened,
       sum(email_clicked) AS email_clicked
FROM {db}.customer_profiles
"""
PIPELINE_LAG = """
SELECT count() AS events, quantile(0.95)(dateDiff('millisecond', received_at, inserted_at)) AS p95_ms,
       max(inserted_at) AS last_stored
FROM {db}.events
WHERE timestamp >= now64(3) - toIntervalHour(2) AND received_at >= now64(3) - toIntervalHour(1)
"""


class EmailFigures(BaseModel):
    """Email events of all time as the customers' profiles count them (``email_sent``,
    ``email_bounced``, ``email_opened``, ``email_clicked``): delivered is sent minus bounced;
    rates are delivered of sent, opened and clicked of delivered (an email opened twice counts
    twice). Read from the profiles because counting the email events of a window scans the
    events table (seconds with 10 million events; the profiles' counters: one pass over them)."""

    sent: int
    delivered: int
    opened: int
    clicked: int
    delivered_rate: float | None
    open_rate: float | None
    click_rate: float | None


class Figures(BaseModel):
    """The figures a marketer opens the day with. A part whose source is not configured is
    ``None`` and named in ``unavailable``."""

    at: datetime
    customers: int | None = None
    active_30d: int | None = None
    revenue: float | None = None
    nps: float | None = None
    """Net Promoter Score of the customers' latest answers (% promoters - % detractors), None without answers."""
    nps_answers: int | None = None
    email: EmailFigures | None = None
    pipeline_lag_ms: float | None = None
    """95th percentile, over the events received in the last hour, of the time from the collector
    receiving an event to its row being stored in ClickHouse; None when none were received."""
    last_event_stored_at: datetime | None = None
    dead_letters: int | None = None
    """Records held in the dead-letter topics (high - low watermark of each partition)."""
    cases_open: int
    cases_overdue: int
    actions_waiting: int
    unavailable: list[str] = []


def router(dispatcher: Dispatcher | None) -> APIRouter:
    """``dispatcher``: with its producer, Kafka is configured and the dead letters are counted."""
    routes = APIRouter(tags=["figures"])
    cache = TtlCache(CACHE_S, max_items=8)

    @routes.get("/v1/figures")
    async def figures(_who: Viewer, session: SessionDep, request: Request) -> Figures:
        """The home page's figures. Customers, active (last seen within 30 days), revenue (all
        time, of current profiles), NPS and the email figures (all time: :class:`EmailFigures`)
        come from ClickHouse's profiles, one pass over them; pipeline lag is ClickHouse's own measure of the
        pipeline (collector receipt → row stored, p95 over the last hour: cheap, and honest
        while events flow; with no traffic it is None and ``last_event_stored_at`` tells how
        long it has been quiet). Dead letters come from Kafka's watermarks of every
        dead-letter topic. Cases (open, past their SLA) and actions waiting are read from the
        relational store, uncached. ClickHouse and Kafka parts are cached 30 seconds."""
        now = datetime.now(UTC)
        counted = await asyncio.to_thread(cases.summary, session, now)
        cases_open, cases_overdue = counted["open"] + counted["pending"], counted["overdue"]
        waiting = sum((await asyncio.to_thread(actions.queue_sizes, session)).values())
        figures = Figures(at=now, cases_open=cases_open, cases_overdue=cases_overdue, actions_waiting=waiting)
        warehouse: Warehouse | None = request.app.state.warehouse
        unavailable: list[str] = []
        if warehouse is None:
            unavailable += ["customers", "active_30d", "revenue", "nps", "email", "pipeline_lag_ms"]
        else:
            for key, value in (await _cached(cache, "warehouse", lambda: _warehouse_figures(warehouse))).items():
                setattr(figures, key, value)
        if dispatcher is None or dispatcher.producer is None:
            unavailable.append("dead_letters")
        else:
            config = settings_of(request).kafka_client_config()
            counted = await _cached(cache, "kafka", lambda: asyncio.to_thread(_dead_letters, config))
            if counted is None:
                unavailable.append("dead_letters")
            figures.dead_letters = counted
        figures.unavailable = unavailable
        return figures

    return routes


async def _cached(cache: TtlCache, key: str, compute: Any) -> Any:
    hit = cache.get(key)
    if hit is None:
        hit = (await compute(),)
        cache.put(key, hit)
    return hit[0]


async def _warehouse_figures(warehouse: Warehouse) -> dict[str, Any]:
    params = {"days": WINDOW_DAYS}
    profile = await warehouse.query(PROFILE_FIGURES, params)
    lag = await warehouse.query(PIPELINE_LAG, params)
    p = profile[0]
    answers = int(p["nps_answers"])
    sent = int(p["email_sent"])
    delivered = max(0, sent - int(p["email_bounced"]))
    opened, clicked = int(p["email_opened"]), int(p["email_clicked"])
    l0 = lag[0] if lag else {"events": 0}
    return {
        "customers": int(p["customers"]),
        "active_30d": int(p["active"]),
        "revenue": float(p["revenue"]),
        "nps_answers": answers,
        "nps": round((int(p["promoters"]) - int(p["detractors"])) * 100 / answers, 1) if answers else None,
        "email": EmailFigures(
            sent=sent,
            delivered=delivered,
            opened=opened,
            clicked=clicked,
            delivered_rate=_rate(delivered, sent),
            open_rate=_rate(opened, delivered),
            click_rate=_rate(clicked, delivered),
        ),
        "pipeline_lag_ms": float(l0["p95_ms"]) if int(l0["events"]) else None,
        "last_event_stored_at": l0.get("last_stored") if int(l0["events"]) else None,
    }


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _dead_letters(config: dict[str, Any], timeout_s: float = 2.0) -> int | None:
    """Records in every dead-letter topic of the registry; None when Kafka does not answer in time."""
    started = time.monotonic()
    consumer = Consumer(consumer_config(config, "ecrm-interaction-figures"))
    try:
        total = 0
        for topic in [TOPICS_BY_NAME[t.dead_letter] for t in ALL_TOPICS if t.dead_letter]:
            for partition in range(topic.partitions):
                remaining = max(0.1, timeout_s - (time.monotonic() - started))
                low, high = consumer.get_watermark_offsets(TopicPartition(topic.name, partition), timeout=remaining)
                total += max(0, high - low)
        return total
    except KafkaException:
        return None
    finally:
        consumer.close()
