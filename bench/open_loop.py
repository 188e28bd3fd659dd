"""An open-loop HTTP load generator: requests leave on a schedule, whatever the server does.

wrk is a closed loop: each connection waits for its answer before sending again, so a slow
server is offered less load and its queueing never shows in the latencies (coordinated
omission). Here request ``i`` is due at ``start + i / rate``; it is sent then (on a free
keep-alive connection, or a new one up to ``--connections``), and its latency is measured
from when it was due, not from when it got a connection. When the generator itself falls
behind its schedule it says so (``behind_ms``), so a slow generator is not blamed on the server.

    python -m bench.open_loop --url http://127.0.0.1:8080/v1/batch --bodies b.ndjson \\
        --events-per-body 50 --rate 5000 --seconds 20 --warmup 5 --write-key KEY

Prints one JSON object: requests by status, accepted events, latency percentiles of the
measured window (the warm-up's requests are sent but not counted).
"""

from __future__ import annotations

import asyncio
import base64
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import aiohttp
import orjson
import typer
import uvloop


@dataclass
class Tally:
    """What the measured window's requests got."""

    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    accepted_events: int = 0
    behind_s: list[float] = field(default_factory=list)

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(tally: Tally, seconds: float, events_per_body: int) -> dict[str, object]:
    requests = sum(tally.statuses.values())
    ok = sum(n for status, n in tally.statuses.items() if status.startswith("2"))
    return {
        "requests": requests,
        "statuses": dict(sorted(tally.statuses.items())),
        "accepted_events_per_s": round(tally.accepted_events / seconds, 1),
        "requests_per_s": round(requests / seconds, 1),
        "error_rate": round((requests - ok) / requests, 5) if requests else 0.0,
        "rate_503": round(tally.statuses.get("503", 0) / requests, 5) if requests else 0.0,
        "rate_429": round(tally.statuses.get("429", 0) / requests, 5) if requests else 0.0,
        "p50_ms": round(percentile(tally.latencies_s, 50) * 1000, 2),
        "p99_ms": round(percentile(tally.latencies_s, 99) * 1000, 2),
        "p999_ms": round(percentile(tally.latencies_s, 99.9) * 1000, 2),
        "max_ms": round(max(tally.latencies_s, default=0) * 1000, 2),
        "behind_p99_ms": round(percentile(tally.behind_s, 99) * 1000, 2),
        "events_per_body": events_per_body,
    }


async def drive(
    url: str, bodies: list[bytes], events_per_body: int, rate: float, seconds: float, warmup: float,
    connections: int, write_key: str, timeout_s: float,
) -> dict[str, object]:  # fmt: skip
    interval = events_per_body / rate
    total = int((warmup + seconds) / interval)
    measured_from = int(warmup / interval)
    tally = Tally()
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout_s)
    in_flight: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, headers=headers) as session:

        async def send(index: int, due: float, body: bytes) -> None:
            counted = index >= measured_from
            try:
                async with session.post(url, data=body) as response:
                    payload = await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, payload = type(exc).__name__, b""
            if not counted:
                return
            tally.latencies_s.append(time.perf_counter() - due)
            tally.count(status)
            if status.startswith("2"):
                tally.accepted_events += _accepted(payload, events_per_body)

        start = time.perf_counter() + 0.05
        for index in range(total):
            body = fresh(bodies, index)
            due = start + index * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif index >= measured_from:
                tally.behind_s.append(-delay)
            task = asyncio.create_task(send(index, due, body))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=timeout_s + 1)
    return summary(tally, seconds, events_per_body)


def fresh(bodies: list[bytes], index: int) -> bytes:
    """Body ``index`` of the cycled pool; past the first round its message ids get the round's
    number, so that a long run's events stay unique (a repeated id is deduplicated, not folded)."""
    body = bodies[index % len(bodies)]
    round_ = index // len(bodies)
    return body.replace(b'"messageId":"', b'"messageId":"%d-' % round_) if round_ else body


def _accepted(payload: bytes, events_per_body: int) -> int:
    """Events a 2xx answer accepted: the batch route says how many, a single route one."""
    if events_per_body == 1:
        return 1
    try:
        return int(orjson.loads(payload).get("accepted", 0))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0


def main(
    url: Annotated[str, typer.Option(help="Where to POST.")],
    bodies: Annotated[Path, typer.Option(help="Request bodies, one per line.")],
    rate: Annotated[float, typer.Option(help="Offered events per second.")],
    seconds: Annotated[float, typer.Option(help="Measured seconds.")] = 20,
    warmup: Annotated[float, typer.Option(help="Seconds sent first and not counted.")] = 5,
    events_per_body: Annotated[int, typer.Option(help="Events in each body.")] = 50,
    connections: Annotated[int, typer.Option(help="At most this many connections at once.")] = 256,
    write_key: Annotated[str, typer.Option(help="The collector write key.")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds before a request counts as failed.")] = 10,
) -> None:
    payloads = [line for line in bodies.read_bytes().split(b"\n") if line]
    result = uvloop.run(drive(url, payloads, events_per_body, rate, seconds, warmup, connections, write_key, timeout))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    typer.run(main)
