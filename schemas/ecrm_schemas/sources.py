"""Sources: who may send events to the collector, with which write key, from where.

Each source has a name, a kind (``browser`` keys live in web pages and are public;
``server`` keys are secrets of a company's back end), the origins a browser source may
send from (CORS), and the SHA-256 of its write key. Keys are random 192-bit tokens, so a
fast hash is enough, and only the hash is stored: a key is shown once, when it is made.

The registry is a JSON file (``COLLECTOR_SOURCES_FILE``): the collector reads it (and re-reads
it when it changes); ``ecrm-collector sources …`` and the interaction service's ``/v1/sources``
(the staff console) manage it, each change under :func:`editing` so two managers never lose
each other's change. This module is the file's one definition.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

SourceKind = Literal["browser", "server"]
KEY_PREFIX = {"browser": "wkb_", "server": "wks_"}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: SourceKind) -> str:
    return KEY_PREFIX[kind] + secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    kind: SourceKind
    key_hash: str
    allowed_origins: tuple[str, ...] = ()
    revoked: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def allows_origin(self, origin: str | None) -> bool:
        """Browser sources send only from their origins; ``*`` allows any. Server sources ignore origins."""
        if self.kind == "server" or origin is None:
            return True
        return "*" in self.allowed_origins or origin in self.allowed_origins


class SourceError(ValueError):
    """A source operation that cannot be done (duplicate name, unknown source)."""


@dataclass
class SourceRegistry:
    """Sources by key hash; ``find`` is what authentication uses."""

    sources: dict[str, Source] = field(default_factory=dict)

    def find(self, presented_key: str) -> Source | None:
        source = self.sources.get(hash_key(presented_key))
        return source if source is not None and not source.revoked else None

    def by_name(self, name: str) -> Source:
        """The source of that name in force (else a revoked one of that name)."""
        named = sorted((s for s in self.sources.values() if s.name == name), key=lambda s: s.revoked)
        if not named:
            raise SourceError(f"no source named {name!r}")
        return named[0]

    def add(self, name: str, kind: SourceKind, origins: tuple[str, ...] = ()) -> tuple[Source, str]:
        """Create a source; returns it and its write key (shown once, never stored)."""
        if any(s.name == name and not s.revoked for s in self.sources.values()):
            raise SourceError(f"a source named {name!r} exists already")
        key = new_key(kind)
        source = Source(name=name, kind=kind, key_hash=hash_key(key), allowed_origins=origins)
        self.sources[source.key_hash] = source
        return source, key

    def add_known_key(self, name: str, kind: SourceKind, key: str) -> Source:
        """Register a key given in configuration (the development key)."""
        source = Source(name=name, kind=kind, key_hash=hash_key(key), allowed_origins=("*",))
        self.sources[source.key_hash] = source
        return source

    def revoke(self, name: str) -> Source:
        source = self.by_name(name)
        revoked = replace(source, revoked=True)
        self.sources[source.key_hash] = revoked
        return revoked

    @classmethod
    def load(cls, path: Path | None) -> SourceRegistry:
        if path is None or not path.exists():
            return cls()
        entries = json.loads(path.read_text())["sources"]
        sources = [Source(**(e | {"allowed_origins": tuple(e.get("allowed_origins", ()))})) for e in entries]
        return cls({s.key_hash: s for s in sources})

    def save(self, path: Path) -> None:
        """Write atomically (temp file, then rename) so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"sources": [asdict(s) for s in self.sources.values()]}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sources-")
        with os.fdopen(fd, "w") as handle:
            handle.write(body + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


@contextmanager
def editing(path: Path) -> Iterator[SourceRegistry]:
    """The registry at ``path`` to change, saved when the block ends without an error; other
    editors wait meanwhile (an exclusive lock on a file beside it), so no change is lost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registry = SourceRegistry.load(path)
        yield registry
        registry.save(path)


class SourceDirectory:
    """What write keys are authenticated against (the collector's events, the chat widget): the
    registry file, re-read when it changes (so ``sources add``/``revoke`` apply without a
    restart), plus server keys from the environment."""

    def __init__(self, path: Path | None, env_keys: frozenset[str], check_every_s: float = 1.0) -> None:
        self.path, self.env_keys, self.check_every_s = path, env_keys, check_every_s
        self._stamp: float | None = None
        self._next_check = 0.0
        self._registry = self._load()

    def _load(self) -> SourceRegistry:
        registry = SourceRegistry.load(self.path)
        for index, key in enumerate(sorted(self.env_keys)):
            registry.add_known_key(f"env-{index}", "server", key)
        self._stamp = self.path.stat().st_mtime if self.path and self.path.exists() else None
        return registry

    def _fresh(self) -> SourceRegistry:
        now = time.monotonic()
        if self.path is not None and now >= self._next_check:
            self._next_check = now + self.check_every_s
            stamp = self.path.stat().st_mtime if self.path.exists() else None
            if stamp != self._stamp:
                self._registry = self._load()
        return self._registry

    def find(self, presented_key: str) -> Source | None:
        return self._fresh().find(presented_key)

    def named(self, name: str) -> Source | None:
        """The source of that name in force; None when there is none (or it was revoked)."""
        try:
            source = self._fresh().by_name(name)
        except SourceError:
            return None
        return None if source.revoked else source
