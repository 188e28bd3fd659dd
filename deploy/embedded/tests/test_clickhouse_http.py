"""The chdb-backed ClickHouse HTTP server, driven by clickhouse-connect and plain HTTP.

One real server process (real chdb, no mocks) is shared by the module; the persistence
test restarts it on the same data directory.
"""

from __future__ import annotations

import gzip
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from ecrm_embedded.clickhouse_http import _parse_insert_head
from ecrm_embedded.testing import ClickHouseServer

pytestmark = pytest.mark.clickhouse


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    base = tmp_path_factory.mktemp("clickhouse_http")
    srv = ClickHouseServer(base / "data", base / "server.log").start()
    yield srv
    if srv.process is not None and srv.process.poll() is None:
        srv.stop()


@pytest.fixture
def client(server: ClickHouseServer) -> Iterator[Client]:
    c = server.client()
    yield c
    c.close()


def test_ping_and_select_one(server: ClickHouseServer, client: Client) -> None:
    assert client.ping()
    assert httpx.get(f"{server.url}/ping").text == "Ok.\n"
    assert client.server_version.startswith("26.")
    assert client.query("SELECT 1").result_rows == [(1,)]
    assert client.command("SELECT 1") == 1


def test_insert_and_read_back_types(client: Client) -> None:
    client.command(
        """CREATE TABLE typed (
            s String, n UInt64, ts DateTime64(3), attrs Map(String, String),
            maybe Nullable(String), kind LowCardinality(String)
        ) ENGINE = MergeTree ORDER BY n"""
    )
    rows = [
        ("alpha", 1, datetime(2024, 5, 6, 7, 8, 9, 123000), {"plan": "pro", "src": "ads"}, None, "signup"),
        ("beta ünïcode\t'q'", 2**63, datetime(2024, 5, 6, 7, 8, 10), {}, "set", "purchase"),
    ]
    summary = client.insert("typed", rows)  # Native body, lz4 Content-Encoding: the client's defaults
    assert summary.written_rows == 2

    result = client.query("SELECT * FROM typed ORDER BY n")  # zstd-compressed Native response
    assert result.result_rows == rows
    assert [t.name for t in result.column_types] == [
        "String", "UInt64", "DateTime64(3)", "Map(String, String)", "Nullable(String)", "LowCardinality(String)",
    ]  # fmt: skip


def test_replacing_merge_tree_final(client: Client) -> None:
    client.command(
        "CREATE TABLE profiles (id UInt64, email String, v UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY id"
    )
    client.insert("profiles", [(1, "old@x", 1), (2, "b@x", 1)])
    client.insert("profiles", [(1, "new@x", 2)])
    final = client.query("SELECT id, email FROM profiles FINAL ORDER BY id").result_rows
    assert final == [(1, "new@x"), (2, "b@x")]


def test_insert_deduplication_token(client: Client) -> None:
    client.command(
        "CREATE TABLE dedup (id UInt64, v String) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    rows = [(1, "a"), (2, "b")]
    client.insert("dedup", rows, settings={"insert_deduplication_token": "batch-1"})
    client.insert("dedup", rows, settings={"insert_deduplication_token": "batch-1"})
    assert client.command("SELECT count() FROM dedup") == 2
    # Same rows, new token: inserted, so the token (not the rows' hash) decides...
    client.insert("dedup", rows, settings={"insert_deduplication_token": "batch-2"})
    assert client.command("SELECT count() FROM dedup") == 4
    # ...and different rows under a used token are dropped.
    client.insert("dedup", [(3, "c")], settings={"insert_deduplication_token": "batch-1"})
    assert client.command("SELECT count() FROM dedup") == 4
    # The URL setting applied to its own request only.
    assert client.command("SELECT getSetting('insert_deduplication_token')") == ""


def test_settings_are_per_request_and_set_is_per_session(server: ClickHouseServer, client: Client) -> None:
    default = client.command("SELECT getSetting('max_block_size')")
    assert client.command("SELECT getSetting('max_block_size')", settings={"max_block_size": 1234}) == 1234
    assert client.command("SELECT getSetting('max_block_size')") == default

    client.command("SET max_block_size = 777")  # clickhouse-connect sends a session_id
    assert client.command("SELECT getSetting('max_block_size')") == 777
    other = server.client()
    assert other.command("SELECT getSetting('max_block_size')") == default
    other.close()


def test_database_param_selects_database(server: ClickHouseServer, client: Client) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS http_db")
    client.command("CREATE TABLE http_db.items (id UInt8) ENGINE = MergeTree ORDER BY id")
    scoped = server.client(database="http_db")
    scoped.insert("items", [(7,)])
    assert scoped.command("SELECT currentDatabase()") == "http_db"
    assert scoped.query("SELECT id FROM items").result_rows == [(7,)]
    assert client.command("SELECT currentDatabase()") == "default"
    scoped.close()


def test_server_side_parameters(client: Client) -> None:
    assert client.query("SELECT {x:UInt32}", parameters={"x": 5}).result_rows == [(5,)]
    # Large bind values make clickhouse-connect switch to a multipart/form-data body.
    big = "ab'c\\" * 2000
    assert client.query("SELECT {s:String}", parameters={"s": big}).result_rows == [(big,)]


def test_errors_are_clickhouse_exceptions(server: ClickHouseServer, client: Client) -> None:
    with pytest.raises(DatabaseError) as raised:
        client.query("SELECT * FROM no_such_table")
    assert raised.value.code == 60
    assert "Code: 60" in str(raised.value) and "UNKNOWN_TABLE" in str(raised.value)

    response = httpx.post(server.url, content=b"SELEC 1")
    assert response.status_code == 400
    assert response.headers["X-ClickHouse-Exception-Code"] == "62"
    assert response.text.startswith("Code: 62. DB::Exception: Syntax error")
    assert "(SYNTAX_ERROR) (version 26." in response.text

    # ClickHouse answers 404 for unknown tables/databases/settings.
    assert httpx.get(server.url, params={"query": "SELECT * FROM no_such_table"}).status_code == 404


def test_plain_http(server: ClickHouseServer) -> None:
    response = httpx.get(f"{server.url}/?query=SELECT%201")
    assert (response.status_code, response.text) == (200, "1\n")
    assert response.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert response.headers["X-ClickHouse-Query-Id"]

    refused = httpx.get(server.url, params={"query": "CREATE TABLE never (a UInt8) ENGINE = Memory"})
    assert refused.headers["X-ClickHouse-Exception-Code"] == "164"  # GET is read-only
    refused = httpx.post(server.url, params={"readonly": "1"}, content=b"CREATE TABLE never (a UInt8) ENGINE = Memory")
    assert refused.headers["X-ClickHouse-Exception-Code"] == "164"

    # Without a session_id, SET lasts for its own request only.
    assert httpx.post(server.url, content=b"SET max_block_size = 99").status_code == 200
    assert httpx.get(server.url, params={"query": "SELECT getSetting('max_block_size')"}).text != "99\n"

    httpx.post(server.url, content=b"CREATE TABLE csv_in (a UInt8, b String) ENGINE = MergeTree ORDER BY a")
    ok = httpx.post(
        server.url,
        params={"query": "INSERT INTO csv_in FORMAT CSV"},
        content=gzip.compress(b"1,one\n2,two\n"),
        headers={"Content-Encoding": "gzip"},
    )
    assert ok.status_code == 200 and '"written_rows":"2"' in ok.headers["X-ClickHouse-Summary"]
    assert httpx.post(server.url, content=b"INSERT INTO csv_in VALUES (3, 'three')").status_code == 200

    listed = httpx.get(
        server.url,
        params={"query": "SELECT a, b FROM csv_in ORDER BY a FORMAT JSONEachRow", "enable_http_compression": "1"},
        headers={"Accept-Encoding": "gzip"},
    )
    assert listed.headers["Content-Encoding"] == "gzip"
    assert listed.text.splitlines() == ['{"a":1,"b":"one"}', '{"a":2,"b":"two"}', '{"a":3,"b":"three"}']


def test_ping_answers_while_a_slow_query_runs(server: ClickHouseServer) -> None:
    slow = server.client()
    worker = threading.Thread(target=slow.command, args=("SELECT sleep(1)",))
    worker.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert httpx.get(f"{server.url}/ping").text == "Ok.\n"
    elapsed = time.monotonic() - started
    still_running = worker.is_alive()
    worker.join()
    slow.close()
    assert still_running and elapsed < 0.3


def test_data_persists_across_restart(server: ClickHouseServer, client: Client) -> None:
    client.command("CREATE TABLE kept (id UInt64) ENGINE = MergeTree ORDER BY id")
    client.insert("kept", [(1,), (2,), (3,)])
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log_path.read_text()  # chdb session closed
    server.start()
    again = server.client()
    assert again.query("SELECT id FROM kept ORDER BY id").result_rows == [(1,), (2,), (3,)]
    again.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INSERT INTO t (a, b) FORMAT Native\n\x05\x00", ("INSERT INTO t (a, b) ", "Native", "\x05\x00")),
        ("INSERT INTO db.`t` SETTINGS async_insert=1 FORMAT CSV 1,2\n", ("INSERT INTO db.`t` ", "CSV", "1,2\n")),
        ("insert into table t values (1),(2)", ("insert into table t ", "Values", " (1),(2)")),
        (
            "INSERT INTO FUNCTION file('x', 'CSV') FORMAT TSV\r\n1",
            ("INSERT INTO FUNCTION file('x', 'CSV') ", "TSV", "1"),
        ),
        ("INSERT INTO t SELECT * FROM u FORMAT CSV", None),
        ("SELECT 1 FORMAT CSV", None),
    ],
)
def test_insert_head_split(text: str, expected: tuple[str, str, str] | None) -> None:
    head = _parse_insert_head(text, at_eof=True)
    if expected is None:
        assert head is None
    else:
        assert head is not None
        assert (text[: head.infile_at], head.format_name, text[head.data_start :]) == expected
