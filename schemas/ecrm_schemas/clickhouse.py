"""The one way a service builds its ClickHouse client (clickhouse-connect).

The aggregator writes the tables and the interaction service reads them, so both must build
their clients alike: ``tz_mode="aware"`` (every DateTime64 column is UTC and comes back as an
aware datetime), no session id (a client is shared between threads), and the same reading of
``CLICKHOUSE_URL`` (``http(s)://host:port`` or ``chdb:///path`` for the in-process engine).
Each service calls :func:`clickhouse_client` with the fields of its own settings class; the
services bring ``clickhouse-connect`` (``ecrm-schemas`` itself does not need it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def clickhouse_client(url: str, user: str, password: SecretStr, database: str | None = None) -> Client:
    """A clickhouse-connect client for ``url`` (``http://``, ``https://`` or ``chdb://``)."""
    import clickhouse_connect

    if url.startswith("chdb://"):
        return clickhouse_connect.get_client(dsn=url, tz_mode="aware")
    parts = urlsplit(url)
    return clickhouse_connect.get_client(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        secure=parts.scheme == "https",
        username=user,
        password=password.get_secret_value(),
        database=database or "default",
        autogenerate_session_id=False,
        tz_mode="aware",
    )
