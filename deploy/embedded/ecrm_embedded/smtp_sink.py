"""An SMTP server on loopback that keeps every message it receives as an ``.eml`` file.

Developers and marketers open the files to see exactly what was sent. Files are named
``<UTC time>-<n>.eml`` and written atomically (temp file, then rename).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session


class EmlWriter:
    """aiosmtpd handler: one ``.eml`` per message, with the envelope as headers on top."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sequence = itertools.count(1)

    async def handle_DATA(self, _server: Any, _session: Session, envelope: Envelope) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        name = f"{stamp}-{os.getpid()}-{next(self._sequence)}.eml"
        content = envelope.original_content or b""
        header = (
            f"X-Sink-Mail-From: {envelope.mail_from}\r\nX-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(header + content)
        tmp.rename(self.directory / name)
        return "250 Message accepted for delivery"


class SmtpSink:
    """A running sink; ``messages()`` lists what it stored."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.directory = Path(directory)
        self.controller = Controller(EmlWriter(self.directory), hostname=host, port=port)

    @property
    def url(self) -> str:
        return f"smtp://{self.controller.hostname}:{self.controller.port}"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SMTP sink: stores every message as an .eml file.")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)
    sink = SmtpSink(args.dir, args.host, args.port).start()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.is_set():
        time.sleep(0.2)
    sink.stop()


if __name__ == "__main__":
    main()
