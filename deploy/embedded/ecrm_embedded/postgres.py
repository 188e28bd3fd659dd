"""A throwaway PostgreSQL cluster in a directory, for tests (the server binaries must exist).

PostgreSQL refuses to run as root, so when we are root the cluster runs as the
``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from glob import glob
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The directory holding initdb/pg_ctl: PATH first, then Debian's layout."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


@dataclass
class PostgresCluster:
    """``directory`` must be reachable by the ``postgres`` user when we run as root (e.g. under /tmp)."""

    directory: Path
    port: int
    bin_dir: Path
    user: str = "ecrm"

    def _run_as(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        subprocess.run(list(args), check=True, capture_output=True, user=self._run_as())

    def start(self) -> PostgresCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        if (owner := self._run_as()) is not None:
            entry = pwd.getpwnam(owner)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        data = self.directory / "data"
        self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(data),
            "-l", str(self.directory / "server.log"),
            "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-w", "start",
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        data = self.directory / "data"
        if data.exists():
            subprocess.run(
                [str(self.bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                user=self._run_as(),
            )
        shutil.rmtree(self.directory, ignore_errors=True)
