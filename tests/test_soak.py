"""A 15-minute soak of the whole pipeline at a fixed rate (``make test-reliability``).

The `make run` stack on PostgreSQL, fed by the benchmark's open-loop generator (shop traffic:
page views, product views, carts, orders, emails, surveys, identifies). Proven: fewer than
0.1 % of requests fail, no service's memory grows (median of the last fifth against the
first fifth), the aggregator's lag stays bounded, and the pipeline drains afterwards.
"""

import os
import time

import pytest

from bench.pipeline_bench import Pipeline, Step
from bench.report import RSS_FLAT_MB, rss_growth

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse,
              pytest.mark.postgres, pytest.mark.smtp]  # fmt: skip
SECONDS = float(os.environ.get("ECRM_SOAK_S", "900"))
RATE = int(os.environ.get("ECRM_SOAK_RATE", "250"))
"""Events per second, below what the machine's pipeline sustains (see `make bench`)."""
LAG_BOUND_S = 30
"""The aggregator's lag may not exceed this many seconds of events."""


def test_a_soak_keeps_errors_memory_and_lag_in_bounds(tmp_path) -> None:
    pipeline = Pipeline(tmp_path / "soak", customers=20_000, seed=7, on_progress=print)
    pipeline.start()
    try:
        started = time.time()
        figures = pipeline.run_step(Step(RATE, SECONDS, warmup=30.0), index=0)
        memory = pipeline.memory(since=started)
        growth = rss_growth({"series": pipeline.series(since=started)})
    finally:
        pipeline.stop()
    http, aggregator = figures["http"], figures["aggregator"]
    print(f"\nsoak {SECONDS:.0f} s at {RATE}/s: http {http}\naggregator {aggregator}\nRSS growth {growth}\n"
          f"memory {memory}\nend to end {figures['end_to_end']}, drained in {figures['drain_s']} s")  # fmt: skip
    assert http["requests"] >= SECONDS * RATE / 50 * 0.95, "the generator kept its rate"
    assert http["error_rate"] < 0.001, http["statuses"]
    services = {"collector", "aggregator", "interaction"}
    assert services <= set(growth)
    assert {name: mb for name, mb in growth.items() if name in services and mb >= RSS_FLAT_MB} == {}
    assert aggregator["lag_max"] <= RATE * LAG_BOUND_S, aggregator
    assert figures["drain_s"] is not None, "every probe reached its profile and its mailbox after the load"
