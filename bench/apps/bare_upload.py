"""Bare upload endpoints: the ceiling of streaming to disk, and the memory control.

* `POST /raw`: `request.stream()` straight to a file — the fastest an ASGI app can
  take a body to disk; the portal's upload throughput is measured against it.
* `POST /readall`: Starlette's form parser, then `await file.read()` — the whole
  upload in memory. Its RSS growth must come out near the file size, proving the
  bench's RSS measurement sees memory when it is used.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

TMP = Path(os.environ.get("BENCH_TMP", "/tmp"))


async def raw(request: Request):
    path = TMP / f"raw-{secrets.token_hex(8)}"
    size = 0
    try:
        with open(path, "wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
                size += len(chunk)
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse({"size": size}, status_code=201)


async def readall(request: Request):
    form = await request.form(max_part_size=1024 * 1024)
    upload = form["file"]
    data = await upload.read()  # the anti-pattern: the whole file in memory
    digest = hashlib.sha256(data).hexdigest()
    await form.close()
    return JSONResponse({"size": len(data), "sha256": digest}, status_code=201)


async def healthz(request: Request):
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/raw", raw, methods=["POST"]),
        Route("/readall", readall, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
