"""The no-op ceiling: the collector's framework and server doing nothing but HTTP.

Same FastAPI, same uvicorn (one worker, uvloop and httptools when installed), same routes.
Each request pays roughly what the collector pays before its own work starts: the write key
is taken from the Authorization header (Basic or Bearer) and looked up by its SHA-256, and
the whole body is read. Nothing is parsed, validated or produced; the answer is
``{"success": true}``.

Serve with ``uvicorn bench.noop_app:app --no-access-log --log-level warning``.
"""

from __future__ import annotations

import base64
import hashlib

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

WRITE_KEYS = {hashlib.sha256(b"ecrm_dev_write_key").hexdigest(): "env-0"}

app = FastAPI(title="no-op ingest (benchmark ceiling)")


def _source(request: Request) -> str:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    key = credentials.strip()
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(credentials, validate=True).decode().partition(":")[0]
        except ValueError:
            key = ""
    source = WRITE_KEYS.get(hashlib.sha256(key.encode()).hexdigest()) if key else None
    if source is None:
        raise HTTPException(401, "unknown write key")
    return source


async def _ingest(request: Request) -> JSONResponse:
    _source(request)
    await request.body()
    return JSONResponse({"success": True})


for _route in ("batch", "track", "identify", "page", "screen", "group", "alias"):
    app.add_api_route(f"/v1/{_route}", _ingest, methods=["POST"])


@app.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}
