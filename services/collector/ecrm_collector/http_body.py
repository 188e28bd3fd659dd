"""Read a request body without trusting its size or encoding."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import orjson


class BodyError(Exception):
    """The body cannot be used: ``status`` and ``code`` say how to answer, ``field`` and
    ``rule`` what failed (``rule`` defaults to the code)."""

    def __init__(self, status: int, code: str, message: str, *, field: str = "body", rule: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.rule = field, rule or code


async def read_body(chunks: AsyncIterator[bytes], *, encoding: str | None, limit: int) -> bytes:
    """Collect at most ``limit`` decoded bytes (gzip allowed).

    Stops reading as soon as the limit is passed, so a huge body never sits in memory.
    """
    encoding = (encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BodyError(415, "content_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip",
                        field="Content-Encoding")  # fmt: skip
    inflater = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    body = bytearray()
    async for chunk in chunks:
        if inflater is not None:
            try:
                chunk = inflater.decompress(chunk, limit + 1 - len(body))
            except zlib.error as exc:
                raise BodyError(400, "gzip", f"the gzip body is malformed: {exc}") from None
        body += chunk
        if len(body) > limit:
            raise BodyError(413, "too_large", f"the body is larger than {limit} bytes", rule="max_bytes")
    if inflater is not None and not inflater.eof:
        raise BodyError(400, "gzip", "the gzip body is truncated")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """A request body as JSON, or :class:`BodyError` (400 ``json_invalid``, field ``body``, rule
    ``required`` when empty, ``json`` with the position otherwise)."""
    if not body:
        raise BodyError(400, "json_invalid", "the body is empty; send a JSON object", rule="required")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (byte {exc.pos})"
        raise BodyError(400, "json_invalid", f"the body is not valid JSON at {where}: {exc.msg}", rule="json") from None
