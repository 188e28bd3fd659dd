"""ClickHouse's HTTP interface, served from an embedded chdb data directory.

One process owns the chdb data directory (chdb allows a single owner) and speaks the
protocol of ``clickhouse-server``'s HTTP port, so clickhouse-connect
(``clickhouse_connect.get_client(host=..., port=...)``), curl and other HTTP tools can
share the embedded store::

    python -m ecrm_embedded.clickhouse_http --data-path .data/clickhouse --port 8123
    curl 'http://127.0.0.1:8123/?query=SELECT+1'

Every query and insert runs in chdb. What the server emulates around it:

* ``GET /ping`` and ``GET /`` answer ``Ok.``; ``GET|POST /`` run queries. The ``query``
  URL parameter and the request body are concatenated as ClickHouse does, so the body is
  either the query or, after ``INSERT ... FORMAT <fmt>`` / ``VALUES``, the data. Insert
  data is streamed to a temporary file (decompressed per ``Content-Encoding``) and loaded
  with ``INSERT ... FROM INFILE``. ``multipart/form-data`` fields ``query``/``param_*``
  are accepted; external tables (file parts) are not.
* URL parameters other than the reserved ones (``database``, ``default_format``,
  ``query_id``, ``session_id``, ``param_*``, ...) are settings. They apply to that
  request only; ``SET`` statements and ``USE`` persist only within a ``session_id``.
* ``GET`` requests are read-only, as in ClickHouse.
* Responses carry ``X-ClickHouse-Query-Id``, ``-Summary``, ``-Timezone``,
  ``-Server-Display-Name`` and, for statements with a result set, ``-Format``; they are
  compressed when ``enable_http_compression=1`` and ``Accept-Encoding`` allow it.
* Errors are ClickHouse's text (``Code: N. DB::Exception: ... (NAME) (version ...)``)
  with ``X-ClickHouse-Exception-Code`` and ClickHouse's HTTP status for the code.

The server is meant for loopback development use: it performs no authentication.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any, BinaryIO

import anyio.to_thread
import lz4.frame
import uvicorn
import zstandard
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger("ecrm_embedded.clickhouse_http")  # the same name when run with -m

__all__ = ["create_app", "main", "serve"]

# Query text (and multipart forms) is held in memory up to this size; insert data is not.
_MAX_QUERY_BYTES = 64 << 20
# A request whose first megabyte holds no complete INSERT head is treated as a plain query.
_MAX_HEAD_SCAN = 1 << 20
# Upper bound on the output of one decompression step.
_DECODE_STEP = 1 << 20

# URL parameters ClickHouse does not treat as settings (besides ``param_*``).
_RESERVED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "user",
        "password",
        "quota_key",
        "role",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "stacktrace",
    }
)
# Statement kinds (first keyword) that modify something, refused in read-only mode.
_WRITE_KINDS = frozenset(
    {
        "INSERT", "CREATE", "ATTACH", "DETACH", "DROP", "UNDROP", "TRUNCATE", "RENAME", "EXCHANGE", "REPLACE",
        "ALTER", "DELETE", "UPDATE", "OPTIMIZE", "SYSTEM", "KILL", "GRANT", "REVOKE", "BACKUP", "RESTORE", "MOVE",
    }
)  # fmt: skip
_RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "CHECK", "KILL", "("})
# Statements after which the session's current database is known to be unchanged.
_KEEPS_DATABASE = frozenset({"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "INSERT", "("})
# Output "formats" chdb's Python wrapper turns into Python objects instead of bytes.
_CHDB_PYTHON_FORMATS = frozenset({"dataframe", "arrowtable", "datastore"})
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DEFAULT_SESSION_TIMEOUT = 60.0
_MAX_SESSION_TIMEOUT = 3600.0

# ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by error name.
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}


class ClickHouseError(Exception):
    """A ClickHouse exception: numeric code, symbolic name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def from_chdb(cls, ex: BaseException) -> ClickHouseError:
        text = str(ex)
        start = text.find("Code: ")
        text = (text[start:] if start >= 0 else text).strip()
        code = re.match(r"Code: (\d+)\.", text)
        name = re.search(r"\(([A-Z][A-Z0-9_]*)\)\s*$", text)
        if code is None:
            return cls(1001, "STD_EXCEPTION", text)
        return cls(int(code.group(1)), name.group(1) if name else "UNKNOWN_EXCEPTION", text)

    @property
    def status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def render(self, version: str) -> str:
        """The response body, as clickhouse-server prints it."""
        text = self.message
        if not text.startswith("Code: "):
            text = f"Code: {self.code}. DB::Exception: {text}. ({self.name})"
        return f"{text} (version {version} (official build))\n"


# --- a minimal SQL scanner: just enough to find statement kinds, FORMAT clauses and INSERT heads


class _Incomplete(Exception):
    """More input is needed to decide."""


_WORD = re.compile(r"[A-Za-z0-9_$]+")


def _tokens(text: str, at_eof: bool = True) -> Iterator[tuple[str, int, int]]:
    """Yield ``(token, start, end)``: upper-cased words, a quote character for quoted
    literals/identifiers, or single punctuation characters. Comments are skipped."""
    n, i = len(text), 0
    while i < n:
        c = text[i]
        if c in " \t\r\n\f\v":
            i += 1
        elif text.startswith("--", i) or text.startswith(("# ", "#!"), i):
            j = text.find("\n", i)
            if j < 0:
                if not at_eof:
                    raise _Incomplete
                return
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                if not at_eof:
                    raise _Incomplete
                return
            i = j + 2
        elif c in "'\"`":
            j = i + 1
            while j < n:
                if text[j] == "\\" or (text[j] == c and text.startswith(c, j + 1)):
                    j += 2
                elif text[j] == c:
                    break
                else:
                    j += 1
            if j + 1 >= n and not at_eof:
                raise _Incomplete  # unterminated, or a doubled quote may follow
            yield c, i, min(j + 1, n)
            i = j + 1
        elif m := _WORD.match(text, i):
            if m.end() == n and not at_eof:
                raise _Incomplete
            yield m.group().upper(), i, m.end()
            i = m.end()
        else:
            yield c, i, i + 1
            i += 1


def _statement_kind(text: str) -> str:
    for token, _, _ in _tokens(text):
        return token
    return ""


def _trailing_format(text: str) -> str | None:
    """The output format named by a top-level ``... FORMAT <name> [SETTINGS ...]`` clause."""
    if "format" not in text.lower():
        return None
    top: list[tuple[str, int, int]] = []  # tokens at parenthesis depth 0
    depth = 0
    for token, start, end in _tokens(text):
        if token == ")":
            depth -= 1
        elif depth == 0:
            top.append((token, start, end))
        if token == "(":
            depth += 1
    for i in range(len(top) - 2, -1, -1):
        if top[i][0] == "FORMAT":
            _, start, end = top[i + 1]
            following = top[i + 2][0] if i + 2 < len(top) else ";"
            return text[start:end].strip('`"') if following in (";", "SETTINGS") else None
    return None


def _client_file_clause(text: str) -> str | None:
    """``INTO OUTFILE`` / ``FROM INFILE`` are clickhouse-client features a server rejects."""
    lowered = text.lower()
    if "infile" not in lowered and "outfile" not in lowered:
        return None
    previous = ""
    for token, _, _ in _tokens(text):
        if (previous, token) in (("INTO", "OUTFILE"), ("FROM", "INFILE")):
            return token
        previous = token
    return None


@dataclass(frozen=True)
class _InsertHead:
    """Offsets into an ``INSERT ... FORMAT <fmt>`` / ``INSERT ... VALUES`` text whose data follows."""

    infile_at: int  # where ``FROM INFILE '...'`` belongs (before SETTINGS/FORMAT/VALUES)
    format_at: int  # start of the FORMAT/VALUES keyword
    format_name: str
    data_start: int


def _parse_insert_head(text: str, at_eof: bool) -> _InsertHead | None:
    """Find where inline insert data starts; None if the statement carries no inline data.

    Raises _Incomplete when ``text`` is a prefix that cannot be decided yet.
    """
    state, depth, settings_at, format_at = "INSERT", 0, -1, -1
    for token, start, end in _tokens(text, at_eof):
        if state == "INSERT":
            if token != "INSERT":
                return None
            state = "INTO"
        elif state == "INTO":
            if token != "INTO":
                return None
            state = "TARGET"
        elif state == "TARGET":
            state = {"TABLE": "TARGET", "FUNCTION": "FUNCTION"}.get(token, "DOT")
        elif state == "FUNCTION":  # the table function's name; its arguments come next
            state = "BODY"
        elif state == "DOT" and token == ".":
            state = "NAME"
        elif state == "NAME":
            state = "BODY"
        elif state == "FORMAT_NAME":
            n, j = len(text), end
            # ClickHouse: data starts after the first newline if there is one, else after whitespace.
            while j < n and text[j] in " \t\f":
                j += 1
            if j < n and text[j] == "\r":
                j += 1
            if j < n and text[j] == "\n":
                j += 1
            if j == n and not at_eof and not text.endswith("\n"):
                raise _Incomplete
            infile_at = settings_at if settings_at >= 0 else format_at
            return _InsertHead(infile_at, format_at, text[start:end].strip('`"'), j)
        else:  # BODY (or DOT without a dot: the table name was unqualified)
            if token == "(":
                depth += 1
            elif token == ")":
                depth -= 1
            elif depth == 0 and token == "SETTINGS" and settings_at < 0:
                settings_at = start
            elif depth == 0 and token == "FORMAT":
                format_at, state = start, "FORMAT_NAME"
                continue
            elif depth == 0 and token == "VALUES":
                infile_at = settings_at if settings_at >= 0 else start
                return _InsertHead(infile_at, start, "Values", end)
            elif depth == 0 and token in ("SELECT", "WITH", "FROM", ";"):
                return None
            state = "BODY"
    if not at_eof:
        raise _Incomplete
    return None


def _quote_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# --- request bodies: decompression and the split into statement and insert data


class _Decoder:
    """Streaming ``Content-Encoding`` decoder writing bounded chunks to ``sink``."""

    def __init__(self, encoding: str, sink: Callable[[bytes], Any]) -> None:
        self._sink = sink
        self._encoding = encoding
        self._zstd: Any = None
        self._obj: Any = None
        self._started = False  # a gzip/deflate/lz4 stream is under way
        if encoding == "zstd":
            self._zstd = zstandard.ZstdDecompressor().stream_writer(
                _SinkWriter(sink),  # type: ignore[arg-type]
                write_size=_DECODE_STEP,
                closefd=False,
            )
        elif encoding in ("gzip", "x-gzip", "deflate"):
            self._obj = zlib.decompressobj(47)  # 32 + 15: accept a gzip or a zlib header
        elif encoding == "lz4":
            self._obj = lz4.frame.LZ4FrameDecompressor()
        elif encoding not in ("", "identity"):
            raise ClickHouseError(36, "BAD_ARGUMENTS", f"Unknown HTTP compression method: {encoding}")

    def write(self, data: bytes) -> None:
        try:
            if self._zstd is not None:
                self._zstd.write(data)
            elif self._encoding == "lz4":
                self._write_lz4(data)
            elif self._obj is not None:
                self._write_zlib(data)
            else:
                self._sink(data)
        except (zstandard.ZstdError, zlib.error, RuntimeError) as ex:
            raise self._error(str(ex)) from None

    def finish(self) -> None:
        """Flush what is left; a truncated gzip/deflate/lz4 stream is an error."""
        if self._obj is None:
            return
        if self._encoding != "lz4":
            self._sink(self._obj.flush())
        if self._started and not self._obj.eof:
            raise self._error("unexpected end of compressed data")

    def _error(self, detail: str) -> ClickHouseError:
        return ClickHouseError(271, "CANNOT_DECOMPRESS", f"Cannot decompress request body ({self._encoding}): {detail}")

    def _write_zlib(self, data: bytes) -> None:
        while data:
            self._started = True
            self._sink(self._obj.decompress(data, _DECODE_STEP))
            if self._obj.eof:  # concatenated gzip members
                data = self._obj.unused_data
                self._obj, self._started = zlib.decompressobj(47), False
            else:
                data = self._obj.unconsumed_tail

    def _write_lz4(self, data: bytes) -> None:
        while True:
            self._started = self._started or bool(data)
            out = self._obj.decompress(data, max_length=_DECODE_STEP)
            data = b""
            if out:
                self._sink(out)
            if self._obj.eof:  # clickhouse-connect sends one LZ4 frame per block
                data = self._obj.unused_data
                self._obj, self._started = lz4.frame.LZ4FrameDecompressor(), False
                if not data:
                    return
            elif self._obj.needs_input:
                return


class _SinkWriter:
    def __init__(self, sink: Callable[[bytes], Any]) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        self._sink(bytes(data))
        return len(data)


@dataclass
class _Statement:
    sql: bytes
    kind: str
    data_file: str | None = None


class _StatementReader:
    """Receives ``query`` parameter + decoded body and splits off inline insert data.

    ClickHouse reads the query from the concatenation of both; whatever follows the
    ``FORMAT <fmt>`` (or ``VALUES``) of an INSERT is data, which goes to a temp file.
    """

    def __init__(self, query_param: str, tmp_dir: str) -> None:
        self._buf = bytearray(query_param.encode())
        if query_param:
            self._buf += b"\n"
        self._tmp_dir = tmp_dir
        self._decided = False  # True once known to be a plain statement or an insert head
        self._head: _InsertHead | None = None
        self._file: BinaryIO | None = None
        self.data_path: str | None = None

    def write(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        self._buf += data
        if len(self._buf) > _MAX_QUERY_BYTES:
            raise ClickHouseError(229, "QUERY_IS_TOO_LARGE", f"Query is too large (over {_MAX_QUERY_BYTES} bytes)")
        if not self._decided:
            self._try_split(at_eof=False)

    def _try_split(self, at_eof: bool) -> None:
        text = bytes(self._buf[:_MAX_HEAD_SCAN]).decode("latin-1")  # one char per byte: offsets match
        try:
            head = _parse_insert_head(text, at_eof or len(self._buf) > _MAX_HEAD_SCAN)
        except _Incomplete:
            return
        self._decided = True
        if head is None:
            return
        self._head = head
        fd, self.data_path = tempfile.mkstemp(suffix=".data", dir=self._tmp_dir)
        self._file = os.fdopen(fd, "wb")
        self._file.write(self._buf[head.data_start :])
        del self._buf[head.data_start :]

    def close(self) -> _Statement:
        """The statement to run: either the text as is or an ``INSERT ... FROM INFILE``."""
        if not self._decided:
            self._try_split(at_eof=True)
        if self._file is not None:
            self._file.close()
        text = bytes(self._buf)
        head = self._head
        if head is None or self.data_path is None:
            plain = text.decode("latin-1")
            if not plain.strip() or not _statement_kind(plain):
                raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
            clause = _client_file_clause(plain)
            if clause == "OUTFILE":
                raise ClickHouseError(358, "INTO_OUTFILE_NOT_ALLOWED", "INTO OUTFILE is not allowed")
            if clause == "INFILE":
                raise ClickHouseError(78, "UNKNOWN_TYPE_OF_QUERY", "Query has infile and was send directly to server")
            return _Statement(text, _statement_kind(plain))
        # Keep the column list and SETTINGS clause; move the data to the file.
        sql = (
            text[: head.infile_at].rstrip()
            + f" FROM INFILE {_quote_string(self.data_path)} ".encode()
            + text[head.infile_at : head.format_at].strip()
            + f" FORMAT {head.format_name}".encode()
        )
        return _Statement(sql, "INSERT", self.data_path)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.data_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.data_path)


# --- the chdb engine


@dataclass
class _Session:
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    expires: float = 0.0


@dataclass
class _Request:
    """Everything about one HTTP query that the engine needs."""

    statement: _Statement
    settings: dict[str, str]
    params: dict[str, str]
    database: str | None
    output_format: str
    read_only: bool
    session_id: str | None = None
    session_timeout: float = _DEFAULT_SESSION_TIMEOUT
    session_check: bool = False
    close_session: bool = False


@dataclass
class _Result:
    body: bytes
    format: str | None  # None when the statement produced no result set
    summary: dict[str, str]
    timezone: str
    settings: dict[str, str]  # the settings in effect (session + URL)


class _Engine:
    """Owns the chdb connection; runs one statement at a time with per-request state.

    chdb has one session for the whole process, so URL settings, the current database and
    ``SET``/``USE`` effects are applied before and reconciled after each statement to give
    every request (or ``session_id``) the isolation a ClickHouse server gives it.
    """

    def __init__(self, data_path: str) -> None:
        self.data_path = os.path.abspath(data_path)
        self.version = ""
        self.timezone = "UTC"
        self.tmp_dir = ""
        self._conn: Any = None
        self._lock = threading.Lock()
        self._baseline: dict[str, str] = {}  # settings chdb starts with that differ from defaults
        self._applied: dict[str, str] = {}  # our changes on top of the baseline
        self._current_db: str | None = None
        self._sessions: dict[str, _Session] = {}

    def open(self) -> None:
        import chdb  # imported here: a 550 MB engine that only the serving process needs

        os.makedirs(self.data_path, exist_ok=True)
        self.tmp_dir = tempfile.mkdtemp(prefix="clickhouse-http-")
        with self._lock:
            try:
                self._conn = chdb.connect(self.data_path)
            except RuntimeError as ex:
                message = f"cannot open chdb data directory {self.data_path} (owned by another process?): {ex}"
                raise RuntimeError(message) from None
            self.version, self.timezone = self._text("SELECT version(), timezone()").rstrip("\n").split("\t")
            self._baseline = self._changed_settings()
        log.info("chdb %s serving %s", self.version, self.data_path)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self.tmp_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def _text(self, sql: str) -> str:
        return self._conn.query(sql, "TabSeparated").bytes().decode()

    def _changed_settings(self) -> dict[str, str]:
        rows = self._text("SELECT name, value FROM system.settings WHERE changed AND name != 'database'")
        return dict(line.split("\t", 1) for line in rows.splitlines())

    def _apply_settings(self, desired: dict[str, str]) -> None:
        for name in [n for n in self._applied if n not in desired]:
            value = self._baseline.get(name)
            self._conn.query(f"SET {name} = {'DEFAULT' if value is None else _quote_string(value)}")
            del self._applied[name]
        for name, value in desired.items():
            if self._applied.get(name) != value:
                if not _SETTING_NAME.match(name):
                    raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
                # Quoted: ClickHouse converts the string to numeric settings; String ones need it.
                self._conn.query(f"SET {name} = {_quote_string(value)}")
                self._applied[name] = value

    def _session(self, request: _Request) -> _Session | None:
        if not request.session_id:
            return None
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]
        session = self._sessions.get(request.session_id)
        if session is None:
            if request.session_check:
                raise ClickHouseError(372, "SESSION_NOT_FOUND", f"Session {request.session_id} not found")
            session = self._sessions[request.session_id] = _Session()
        session.expires = now + request.session_timeout
        return session

    def execute(self, request: _Request) -> _Result:
        statement = request.statement
        if request.read_only and statement.kind in _WRITE_KINDS:
            raise ClickHouseError(
                164,
                "READONLY",
                "Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly. "
                "You should use method POST for modifying queries",
            )
        if request.output_format.lower() in _CHDB_PYTHON_FORMATS:
            raise ClickHouseError(73, "UNKNOWN_FORMAT", f"Unknown format {request.output_format}")
        with self._lock:
            if self._conn is None:
                raise ClickHouseError(210, "NETWORK_ERROR", "Server is shutting down")
            session = self._session(request)
            desired = {**session.settings, **request.settings} if session else dict(request.settings)
            try:
                self._apply_settings(desired)
                database = request.database or (session.database if session else None) or "default"
                if database != self._current_db:
                    self._current_db = None
                    self._conn.query(f"USE {_quote_identifier(database)}")
                    self._current_db = database
                result = self._conn.query(statement.sql, request.output_format, params=request.params)
            except ClickHouseError:
                raise
            except Exception as ex:  # chdb raises ChdbError (a RuntimeError) for every engine error
                raise ClickHouseError.from_chdb(ex) from None
            finally:
                self._after_statement(statement.kind, session, request.settings)
                if request.close_session and request.session_id:
                    self._sessions.pop(request.session_id, None)
        body = result.bytes() or b""
        fmt = None
        if statement.kind in _RESULT_KINDS or body:
            fmt = _trailing_format(statement.sql.decode("latin-1")) or request.output_format
        summary = {
            "read_rows": str(result.storage_rows_read()),
            "read_bytes": str(result.storage_bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "total_rows_to_read": str(result.storage_rows_read()),
            "result_rows": str(result.rows_read()),
            "result_bytes": str(result.bytes_read()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        timezone = desired.get("session_timezone") or self.timezone
        return _Result(body, fmt, summary, timezone, desired)

    def _after_statement(self, kind: str, session: _Session | None, url_settings: dict[str, str]) -> None:
        """Record what SET/USE changed: kept for the session, undone for everyone else."""
        try:
            if kind == "SET":
                changed = self._changed_settings()
                self._applied = {k: v for k, v in changed.items() if self._baseline.get(k) != v}
                if session is not None:
                    session.settings = {k: v for k, v in self._applied.items() if url_settings.get(k) != v}
            if kind == "USE":
                self._current_db = self._text("SELECT currentDatabase()").rstrip("\n")
                if session is not None:
                    session.database = self._current_db
            elif kind not in _KEEPS_DATABASE:
                self._current_db = None  # e.g. DROP DATABASE: re-run USE before the next statement
        except Exception:
            log.warning("could not reconcile session state after %s", kind, exc_info=True)
            self._current_db = None


# --- HTTP


_SERVER_NAME = socket.gethostname()


def _content_type(fmt: str | None) -> str:
    name = (fmt or "").lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return f"text/csv; charset=UTF-8; header={'present' if 'withnames' in name else 'absent'}"
    if name.startswith(("jsoneachrow", "jsonlines", "ndjson", "jsoncompacteachrow", "jsonstringseachrow")):
        return "application/x-ndjson; charset=UTF-8"
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name == "xml":
        return "application/xml; charset=UTF-8"
    if name.startswith(("native", "rowbinary", "parquet", "arrow", "orc", "avro", "protobuf", "msgpack", "capnproto")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def _compress(body: bytes, accept_encoding: str, level: int) -> tuple[bytes, str | None]:
    # ClickHouse's preference order (chooseHTTPCompressionMethod); br/xz/bz2/snappy are not offered here.
    if "zstd" in accept_encoding:
        return zstandard.ZstdCompressor(level=level).compress(body), "zstd"
    if "lz4" in accept_encoding:
        return lz4.frame.compress(body), "lz4"
    if "gzip" in accept_encoding:
        obj = zlib.compressobj(level, zlib.DEFLATED, 31)
        return obj.compress(body) + obj.flush(), "gzip"
    if "deflate" in accept_encoding:
        return zlib.compress(body, level), "deflate"
    return body, None


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true")


async def _read_form(request: Request, params: dict[str, str]) -> None:
    """Merge the text fields of a multipart/form-data body (query, param_*) into params."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_QUERY_BYTES:
            raise ClickHouseError(229, "QUERY_IS_TOO_LARGE", "multipart/form-data body is too large")
    content_type = request.headers["content-type"].encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type + b"\r\n\r\n" + body)
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise ClickHouseError(48, "NOT_IMPLEMENTED", "External data (temporary tables) is not supported")
        if isinstance(name, str):
            params[name] = (part.get_payload(decode=True) or b"").decode()  # type: ignore[union-attr]


async def _read_statement(request: Request, params: dict[str, str], tmp_dir: str) -> _Statement:
    reader = _StatementReader(params.get("query", ""), tmp_dir)
    try:
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            decoder = _Decoder(request.headers.get("content-encoding", "").strip().lower(), reader.write)
            async for chunk in request.stream():
                if chunk:
                    decoder.write(chunk)
            decoder.finish()
        return reader.close()
    except BaseException:
        reader.discard()
        raise


def _base_headers(query_id: str) -> dict[str, str]:
    return {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Server-Display-Name": _SERVER_NAME}


async def _ping(request: Request) -> Response:
    return PlainTextResponse("Ok.\n")


def _session_timeout(params: dict[str, str]) -> float:
    raw = params.get("session_timeout")
    try:
        timeout = float(raw) if raw else _DEFAULT_SESSION_TIMEOUT
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= _MAX_SESSION_TIMEOUT:
        raise ClickHouseError(374, "INVALID_SESSION_TIMEOUT", f"Invalid session timeout: '{raw}'")
    return timeout


async def _query(request: Request) -> Response:
    engine: _Engine = request.app.state.engine
    params = dict(request.query_params)
    query_id = params.get("query_id") or str(uuid.uuid4())
    statement: _Statement | None = None
    try:
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            await _read_form(request, params)
        if _is_true(params.get("compress")) or _is_true(params.get("decompress")):
            message = "ClickHouse native HTTP compression (compress/decompress) is not supported"
            raise ClickHouseError(48, "NOT_IMPLEMENTED", message)
        if request.method == "GET" and "query" not in params:
            return PlainTextResponse("Ok.\n")
        statement = await _read_statement(request, params, engine.tmp_dir)
        session_id = params.get("session_id") or None
        # Never SET readonly: chdb's one session could not be made writable again.
        read_only = params.pop("readonly", "0") not in ("", "0") or request.method == "GET"
        query = _Request(
            statement=statement,
            settings={k: v for k, v in params.items() if k not in _RESERVED_PARAMS and not k.startswith("param_")},
            params={k[6:]: v for k, v in params.items() if k.startswith("param_")},
            database=params.get("database") or request.headers.get("x-clickhouse-database") or None,
            output_format=params.get("default_format") or request.headers.get("x-clickhouse-format") or "TabSeparated",
            read_only=read_only,
            session_id=session_id,
            session_timeout=_session_timeout(params) if session_id else _DEFAULT_SESSION_TIMEOUT,
            session_check=_is_true(params.get("session_check")),
            close_session=_is_true(params.get("close_session")),
        )
        result = await anyio.to_thread.run_sync(engine.execute, query)
    except ClientDisconnect:
        return Response(status_code=400)
    except Exception as ex:  # every failure is reported the ClickHouse way
        if not isinstance(ex, ClickHouseError):
            log.exception("query %s failed unexpectedly", query_id)
            ex = ClickHouseError(1001, "STD_EXCEPTION", f"{type(ex).__name__}: {ex}")
        headers = _base_headers(query_id) | {"X-ClickHouse-Exception-Code": str(ex.code)}
        return PlainTextResponse(ex.render(engine.version), status_code=ex.status, headers=headers)
    finally:
        if statement is not None and statement.data_file:
            with contextlib.suppress(OSError):
                os.unlink(statement.data_file)

    headers = _base_headers(query_id) | {
        "X-ClickHouse-Summary": json.dumps(result.summary, separators=(",", ":")),
        "X-ClickHouse-Timezone": result.timezone,
    }
    if result.format is not None:
        headers["X-ClickHouse-Format"] = result.format
    body = result.body
    accept = request.headers.get("accept-encoding", "").lower()
    if accept and _is_true(result.settings.get("enable_http_compression")):
        level = int(result.settings.get("http_zlib_compression_level") or 3)
        body, encoding = await anyio.to_thread.run_sync(_compress, body, accept, level)
        if encoding:
            headers["Content-Encoding"] = encoding
    return Response(body, headers=headers, media_type=_content_type(result.format))


def create_app(data_path: str) -> Starlette:
    """Build the ASGI app serving ClickHouse's HTTP interface over chdb at ``data_path``.

    The chdb session is opened on application startup and closed on shutdown (lifespan
    events), so the app must run under a server that sends them (uvicorn does). Only one
    app per process can be started: chdb allows one open data directory per process.
    """
    engine = _Engine(data_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(engine.open)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(engine.close)

    app = Starlette(
        routes=[Route("/ping", _ping, methods=["GET"]), Route("/", _query, methods=["GET", "POST"])],
        lifespan=lifespan,
    )
    app.state.engine = engine
    return app


def serve(data_path: str, host: str = "127.0.0.1", port: int = 8123) -> None:
    """Serve ClickHouse's HTTP interface for the chdb data directory ``data_path``.

    Blocks until SIGTERM or SIGINT, then finishes in-flight requests and closes the chdb
    session. There is no authentication: bind to loopback unless the network is trusted.
    """
    # No access log: URLs carry query text and, for some clients, passwords.
    config = uvicorn.Config(
        create_app(data_path), host=host, port=port, access_log=False, log_level="info", timeout_keep_alive=30
    )
    uvicorn.Server(config).run()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m ecrm_embedded.clickhouse_http --data-path DIR [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", required=True, help="chdb data directory (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    serve(args.data_path, args.host, args.port)


if __name__ == "__main__":
    main()
