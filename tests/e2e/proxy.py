"""A fault-injecting reverse proxy in front of the back office, counting what passes."""

from __future__ import annotations

import json
from collections import Counter

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class FaultProxy:
    """mode "unavailable": 503 with Retry-After; mode "forward": pass through to `target`."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.mode = "unavailable"
        self.retry_after = "1"
        self.delivered = Counter()  # event_id -> times the receiver answered 2xx
        self.attempts = Counter()  # event_id -> times the portal tried to send it
        self.requests = 0  # every request, blob PUTs included
        self.app = Starlette(
            routes=[Route("/{path:path}", self.handle, methods=["GET", "PUT", "POST", "HEAD"])]
        )
        self.client = httpx.AsyncClient(base_url=target, timeout=30)

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        if path == "/healthz":
            return JSONResponse({"status": "ok"})
        body = await request.body()
        self.requests += 1
        event_id = None
        if path == "/v1/events":
            try:
                event_id = json.loads(body)["event_id"]
            except (ValueError, KeyError):
                event_id = None
            self.attempts[event_id] += 1
        if self.mode == "unavailable":
            return Response(
                "maintenance", status_code=503, headers={"Retry-After": self.retry_after}
            )
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "x-portal-signature")
        }
        upstream = await self.client.request(request.method, path, content=body, headers=headers)
        if event_id and upstream.is_success:
            self.delivered[event_id] += 1
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
        )
