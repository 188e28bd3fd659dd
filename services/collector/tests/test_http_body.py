import gzip

import pytest

from ecrm_collector.http_body import BodyError, parse_json, read_body


async def read_json(chunks, *, encoding, limit):
    return parse_json(await read_body(chunks, encoding=encoding, limit=limit))


async def _chunks(data: bytes, size: int = 1024):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_plain_and_gzip_json() -> None:
    assert await read_json(_chunks(b'{"a": 1}'), encoding=None, limit=100) == {"a": 1}
    assert await read_json(_chunks(gzip.compress(b'{"a": 2}')), encoding="gzip", limit=100) == {"a": 2}


async def test_limit_applies_to_decompressed_size() -> None:
    bomb = gzip.compress(b"[" + b"0," * 1_000_000 + b"0]")
    with pytest.raises(BodyError) as info:
        await read_json(_chunks(bomb), encoding="gzip", limit=10_000)
    assert info.value.status == 413


async def test_streamed_body_over_limit_stops_early() -> None:
    consumed = 0

    async def endless():
        nonlocal consumed
        while True:
            consumed += 1
            yield b"x" * 1024

    with pytest.raises(BodyError) as info:
        await read_json(endless(), encoding=None, limit=10 * 1024)
    assert info.value.status == 413 and consumed <= 11


@pytest.mark.parametrize(
    ("body", "encoding", "rule", "status"),
    [
        (b"not json", None, "json_invalid", 400),
        (b'{"userId": "\xff\xfe"}', None, "json_invalid", 400),  # not UTF-8
        (b"", None, "json_invalid", 400),
        (b"\x1f\x8bbroken", "gzip", "gzip", 400),
        (b"{}", "br", "content_encoding", 415),
    ],
)
async def test_bad_bodies(body: bytes, encoding: str | None, rule: str, status: int) -> None:
    with pytest.raises(BodyError) as info:
        await read_json(_chunks(body), encoding=encoding, limit=100)
    assert (info.value.code, info.value.status) == (rule, status)
