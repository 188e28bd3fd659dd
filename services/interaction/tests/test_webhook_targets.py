"""Webhook URLs cannot reach the service's own network (SSRF), in any spelling of an address."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from ecrm_interaction.delivery.webhooks import UnsafeWebhookTarget, post, resolve_public

REFUSED = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[::1]/hook",
    "http://[fd00::1]/hook",  # unique local
    "http://[fe80::1%25eth0]/hook",  # link local with a zone
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://[::ffff:a9fe:a9fe]/hook",  # IPv4-mapped metadata
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/hook",  # ... in hex
    "http://0177.0.0.1/hook",  # ... in octal
    "http://127.1/hook",  # ... shortened
    "http://0.0.0.0/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.0.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of a loopback (the prefix itself counts as global)
    "http://[2002:7f00:1::1]/hook",  # 6to4 of a loopback
    "http://metadata.google.internal/computeMetadata/v1/",  # does not resolve here: refused too
    "http://user:secret@example.com/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "http:///hook",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_non_public_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookTarget):
        await resolve_public(url)


async def test_a_public_address_passes_and_an_allowed_private_one_too() -> None:
    assert await resolve_public("http://93.184.215.14/hook") == "93.184.215.14"
    assert await resolve_public("http://10.1.2.3/hook", allowed=["10.0.0.0/8"]) == "10.1.2.3"
    assert await resolve_public("http://localhost/hook", allowed=["localhost"]) in ("127.0.0.1", "::1")


class _Redirecting(BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_POST(self) -> None:
        _Redirecting.paths.append(self.path)
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/" if self.path == "/hook" else "/again")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


async def test_a_redirect_is_not_followed() -> None:
    """An allowed receiver answering 302 to the metadata address: the send fails, nothing follows it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with pytest.raises(httpx.HTTPStatusError, match="302"):
            await post(url, "{}", {}, timeout_s=5, allowed=["127.0.0.1"])
        assert _Redirecting.paths == ["/hook"]
    finally:
        server.shutdown()
