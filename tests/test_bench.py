"""The benchmark suite's own logic: the workload's mix, the open-loop generator's clock,
reading the services' metrics, and the report's ratios, aims and bottleneck."""

import asyncio
import math
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp import web

from bench import prom, report
from bench.open_loop import drive, fresh, percentile
from bench.workload import Workload
from ecrm_collector.ingest import plan_ingest
from ecrm_embedded.net import free_port

WEB = {"page", "Product Viewed", "Element Clicked"}
COMMERCE = {"Product Added", "Order Completed"}
EMAIL = {"Email Sent", "Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced", "Unsubscribed"}
SURVEY = {"NPS Answered", "Survey Answered"}
IDENTITY = {"identify", "alias"}


def test_the_workload_has_the_shops_mix() -> None:
    events = Workload(seed=7, customers=10_000, invalid_ratio=0).events(40_000)
    kinds = Counter(e.get("event") or e["type"] for e in events)
    groups = {"web": WEB, "commerce": COMMERCE, "email": EMAIL, "survey": SURVEY, "identity": IDENTITY}
    share = {name: sum(kinds[k] for k in group) / len(events) for name, group in groups.items()}
    assert share["web"] == pytest.approx(0.60, abs=0.02)
    assert share["commerce"] == pytest.approx(0.08, abs=0.01)
    assert share["email"] == pytest.approx(0.25, abs=0.015)
    assert share["survey"] == pytest.approx(0.02, abs=0.005)
    assert share["identity"] == pytest.approx(0.05, abs=0.01)
    assert sum(share.values()) == pytest.approx(1.0)


def test_about_one_event_in_a_hundred_is_one_the_collector_rejects() -> None:
    received_at = datetime.now(UTC)
    accepted = rejected = 0
    for body in Workload(seed=7, customers=10_000).batch_bodies(400):
        decoded = orjson.loads(body)
        plan = plan_ingest(decoded["batch"], received_at=received_at, source="test", max_event_bytes=32_768,
                           batch_defaults={"context": decoded["context"], "sentAt": decoded["sentAt"]})  # fmt: skip
        accepted, rejected = accepted + len(plan.accepted), rejected + len(plan.rejected)
    assert rejected / (accepted + rejected) == pytest.approx(0.01, abs=0.003)


def test_customers_activity_is_skewed_and_the_seed_repeats() -> None:
    workload = Workload(seed=3, customers=10_000)
    events = workload.events(50_000)
    by_customer = Counter(e.get("anonymousId") or e.get("previousId") for e in events)
    top_1_percent = sum(n for _, n in by_customer.most_common(100))
    assert top_1_percent / len(events) > 0.10  # uniform would give 1 %
    assert Workload(seed=3, customers=500).batch_body() == Workload(seed=3, customers=500).batch_body()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile([], 99) == 0


async def test_open_loop_latency_counts_the_time_a_request_waited_for_its_turn() -> None:
    """A server taking 100 ms per request behind one connection, offered 20 requests/s: a
    closed loop would report 100 ms for every request; the schedule makes the queue visible."""

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.json_response({"accepted": 50})

    app = web.Application()
    app.router.add_post("/v1/batch", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        result = await drive(f"http://127.0.0.1:{port}/v1/batch", [b"{}"], events_per_body=50, rate=1000,
                             seconds=0.5, warmup=0, connections=1, write_key="k", timeout_s=10)  # fmt: skip
    finally:
        await runner.cleanup()
    assert result["requests"] == 10 and result["statuses"] == {"200": 10}
    assert result["max_ms"] > 500  # the tenth was due at 0.45 s and answered after about 1 s
    assert result["p50_ms"] > 200
    assert result["accepted_events_per_s"] == pytest.approx(1000, rel=0.01)


METRICS = """# HELP ecrm_x_seconds x
# TYPE ecrm_x_seconds histogram
ecrm_x_seconds_bucket{table="events",le="0.1"} 10.0
ecrm_x_seconds_bucket{table="events",le="0.5"} 90.0
ecrm_x_seconds_bucket{table="events",le="+Inf"} 100.0
ecrm_x_seconds_count{table="events"} 100.0
ecrm_x_seconds_sum{table="events"} 25.0
ecrm_x_seconds_bucket{table="profiles",le="0.1"} 5.0
ecrm_x_seconds_bucket{table="profiles",le="0.5"} 5.0
ecrm_x_seconds_bucket{table="profiles",le="+Inf"} 5.0
ecrm_y_total{reason="a, b",outcome="sent"} 3.0
ecrm_y_total{reason="c",outcome="sent"} 4.0
"""


def test_metrics_are_read_with_their_labels_and_histograms_give_quantiles() -> None:
    after = prom.parse(METRICS)
    assert prom.total(after, "ecrm_y_total", outcome="sent") == 7
    assert prom.total(after, "ecrm_y_total", reason="a, b") == 3  # a comma inside a quoted label
    events = prom.buckets({}, after, "ecrm_x_seconds", table="events")
    assert events == {0.1: 10, 0.5: 90, math.inf: 100}
    assert prom.quantile(events, 0.5) == pytest.approx(0.1 + 0.4 * (40 / 80))
    assert prom.quantile(events, 0.99) == 0.5  # past the last finite bound: that bound
    assert prom.mean({}, after, "ecrm_x_seconds", table="events") == 0.25
    assert math.isnan(prom.quantile({}, 0.5))


def _entry(events_per_s: float) -> dict:
    return {"events_per_s": report.spread([events_per_s])}


def test_the_report_names_the_stage_furthest_below_its_ceiling_and_checks_the_aims() -> None:
    result = {
        "collector": {"raw-produce": _entry(400_000), "collector-batch": _entry(110_000),
                      "noop-single": _entry(10_000), "collector-single": _entry(7_000)},
        "aggregator": {"raw": _entry(60_000), "kafka-1": _entry(15_000), "kafka-2": _entry(26_000),
                       "faust-1": _entry(3_000)},
        "ceilings": {"raw-consume": _entry(500_000)},
        "pipeline": {"steps": [report.merge_runs([
            {"step": "batch@5000", "shape": "batch", "offered_events_per_s": 5000,
             "end_to_end": {"profile_p99_ms": 900.0, "email_p99_ms": 6000.0}}])]},
    }  # fmt: skip
    found = {r.stage + "/" + r.ceiling: r for r in report.ratios(result)}
    # Issue 21's aims: batch ≥ 0.3 × raw produce, single ≥ 0.7 × no-op, two aggregators ≥ 1.8 × one.
    assert found["collector-batch/raw-produce"].value == pytest.approx(0.275)
    assert found["collector-batch/raw-produce"].met is False
    assert found["collector-single/noop-single"].met is True
    assert found["kafka-2/kafka-1"].value == pytest.approx(26 / 15) and found["kafka-2/kafka-1"].met is False
    worst = report.bottleneck(report.ratios(result))
    assert worst is not None and worst.stage == "kafka-1"  # 0.25 × the plain loop; faust is not a stage of ours
    goals = {a.name: a.met for a in report.aims(result)}
    assert goals["event → profile p99 at 5k events/s"] is True
    assert goals["event → email p99 at 5k events/s"] is False
    assert goals["collector batch path"] is False
    parameters = {"customers": 1, "zipf_s": 1, "seed": 1, "repeat": 1}
    without_steps = {k: v for k, v in result.items() if k != "pipeline"}
    text = report.markdown(without_steps | {"started_at": "now", "command": "x", "git": {}, "machine": {},
                                     "parameters": parameters}, [])  # fmt: skip
    assert "Furthest below its ceiling: kafka-1" in text


def test_repetitions_merge_into_medians_and_ranges() -> None:
    merged = report.merge_runs([{"a": 1.0, "b": {"c": 10}, "name": "x"}, {"a": 3.0, "b": {"c": 30}, "name": "x"},
                                {"a": 2.0, "b": {"c": 20}, "name": "x"}])  # fmt: skip
    assert merged["a"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert merged["b"]["c"]["median"] == 20 and merged["name"] == "x"


def test_rss_growth_compares_the_first_and_last_fifth() -> None:
    soak = {"series": {"rss_mb": {"flat": [100.0] * 50, "leaky": [100.0 + i for i in range(50)]}}}
    growth = report.rss_growth(soak)
    assert growth["flat"] == 0 and growth["leaky"] > 30

    def rss_aim(result: dict) -> list:
        return [a.met for a in report.aims(result) if a.name.startswith("RSS")]

    assert rss_aim({"soak": soak | {"seconds": 1, "rate": 1}}) == [False]
    in_memory = {"series": {"rss_mb": {"flat": [100.0] * 50, "kafka": [100.0 + i for i in range(50)]}}}
    assert rss_aim({"soak": in_memory}) == [True]  # the embedded broker holds its data in memory
    assert orjson.dumps(report.as_dicts(report.aims({"soak": soak | {"seconds": 1, "rate": 1}})))


def test_a_cycled_body_pool_keeps_message_ids_unique() -> None:
    bodies = [orjson.dumps({"batch": [{"messageId": "a"}, {"messageId": "b"}]}), orjson.dumps({"messageId": "c"})]
    ids = []
    for index in range(6):
        decoded = orjson.loads(fresh(bodies, index))
        ids += [e["messageId"] for e in decoded.get("batch", [decoded])]
    assert len(ids) == len(set(ids)) == 9
    assert fresh(bodies, 0) == bodies[0]
