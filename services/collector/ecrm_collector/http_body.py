"""Read a request body without trusting its size or encoding."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import orjson


class BodyError(Exception):
    """The body cannot be used: ``status`` says how to answer, ``rule`` what failed."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        super().__init__(message)
        self.status, self.rule, self.message = status, rule, message


async def read_body(chunks: AsyncIterator[bytes], *, encoding: str | None, limit: int) -> bytes:
    """Collect at most ``limit`` decoded bytes (gzip allowed).

    Stops reading as soon as the limit is passed, so a huge body never sits in memory.
    """
    encoding = (encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BodyError(415, "content_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip")
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
            raise BodyError(413, "too_large", f"the body is larger than {limit} bytes")
    if inflater is not None and not inflater.eof:
        raise BodyError(400, "gzip", "the gzip body is truncated")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """A request body as JSON, or :class:`BodyError` (400 ``json_invalid``)."""
    if not body:
        raise BodyError(400, "json_invalid", "the body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, "json_invalid", f"the body is not valid JSON: {exc}") from None
