"""Stopping the processes the dev stack, the tests and the benchmarks start."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int | None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited within ``timeout_s``.

    Returns the exit code; ``None`` if the process had already exited before.
    """
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
