"""Small network helpers for the dev stack and tests."""

from __future__ import annotations

import socket

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_http_ok(url: str, timeout_s: float = 60.0) -> None:
    """Block until ``url`` answers 2xx, or raise after ``timeout_s``."""

    @retry(
        stop=stop_after_delay(timeout_s), wait=wait_fixed(0.2), retry=retry_if_exception_type(Exception), reraise=True
    )
    def probe() -> None:
        httpx.get(url, timeout=2).raise_for_status()

    probe()
