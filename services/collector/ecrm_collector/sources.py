"""What the collector authenticates write keys against: the sources registry
(:mod:`ecrm_schemas.sources`, the file ``COLLECTOR_SOURCES_FILE``), re-read when it changes.
The directory itself lives in the schemas, since the interaction service's chat widget
authenticates the same write keys."""

from __future__ import annotations

from ecrm_schemas.sources import (
    KEY_PREFIX,
    Source,
    SourceDirectory,
    SourceError,
    SourceKind,
    SourceRegistry,
    editing,
    hash_key,
    new_key,
)

__all__ = [
    "KEY_PREFIX",
    "Source",
    "SourceDirectory",
    "SourceError",
    "SourceKind",
    "SourceRegistry",
    "editing",
    "hash_key",
    "new_key",
]
