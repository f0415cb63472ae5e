"""Prometheus metrics at /metrics: requests and latency by route template, the outbox's health.

Request metrics are labelled by the route's template (`/cases/{case_no}`), never the
raw path, so no case number or phone reaches a label and the series stay few.
Outbox gauges are read from the database at scrape time (one grouped query), so
every process reports the same truth whichever one is scraped.

Several worker processes (`portal serve --workers N`): `portal serve` points
PROMETHEUS_MULTIPROC_DIR at a directory of its own before the workers start
(`prepare_multiprocess_dir`); each worker then writes its counters to memory-mapped
files there and a scrape of any worker sums them all. Without that variable
(tests, `uvicorn portal.app:create_app` by hand) the counts are the answering
process's own.

/metrics answers only clients on loopback or private addresses (docs/operations.md,
"Metrics"): the figures are operational detail, not for the public internet.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.routing import Router

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(data_dir: Path, port: int) -> Path:
    """Before workers start: an empty metrics dir for this serve process, named in the env.

    One directory per `portal serve` (host and port in its name), because several
    serve processes may share one data dir and each wipes its own at start: counts
    of a previous run must not be added to this one's. An operator's own
    PROMETHEUS_MULTIPROC_DIR (e.g. a local tmpfs when the data dir is on NFS) wins.
    """
    path = Path(
        os.environ.get(MULTIPROC_ENV) or data_dir / "metrics" / f"{socket.gethostname()}-{port}"
    )
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    # Read by prometheus_client itself when it is first imported, in this process and
    # in the worker processes uvicorn spawns (they inherit the environment).
    os.environ[MULTIPROC_ENV] = str(path)
    return path


# prometheus_client picks its value store (in-process, or mmap files when
# PROMETHEUS_MULTIPROC_DIR is set) when it is first imported, so it is imported
# lazily: `portal serve` sets the variable first, and importing this module must
# not decide the store before that.
_instruments: tuple[Any, Any] | None = None
_lock = threading.Lock()
UNMATCHED = "<unmatched>"


def instruments() -> tuple[Any, Any]:
    """The request counter and latency histogram, created on first use."""
    global _instruments
    if _instruments is not None:
        return _instruments
    with _lock:
        if _instruments is not None:
            return _instruments
        from prometheus_client import Counter, Histogram

        # In no global registry: each scrape builds its own (see `exposition`), so
        # several apps in one process (tests) never collide.
        requests = Counter(
            "portal_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=None,
        )
        latency = Histogram(
            "portal_http_request_duration_seconds",
            "Time from the request's arrival to the last byte of the answer.",
            ["route", "method", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
            registry=None,
        )
        _instruments = (requests, latency)
    return _instruments


def route_label(scope: Scope) -> str:
    """The template of the route that answered (`/cases/{case_no}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    return UNMATCHED


class RequestMetrics:
    """Pure ASGI: counts every HTTP request and times it to the end of its body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            labels = (route_label(scope), scope.get("method", ""), str(status["code"]))
            requests, latency = instruments()
            requests.labels(*labels).inc()
            latency.labels(*labels).observe(time.perf_counter() - started)


class OutboxCollector:
    """Outbox depth, age of the oldest pending message and parked (dead) ones, read at scrape."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from portal.clock import utcnow
        from portal.exchange.models import OutboxMessage
        from portal.exchange.outbox import DEAD, PENDING

        # One grouped query over the status index; delivered rows are never touched.
        query = (
            select(OutboxMessage.status, func.count(), func.min(OutboxMessage.created_at))
            .where(OutboxMessage.status.in_((PENDING, DEAD)))
            .group_by(OutboxMessage.status)
        )
        with self.db.session() as session:
            rows = {status: (count, oldest) for status, count, oldest in session.execute(query)}
        pending, oldest = rows.get(PENDING, (0, None))
        dead = rows.get(DEAD, (0, None))[0]
        age = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:  # SQLite through a raw aggregate keeps no offset
                from datetime import UTC

                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (utcnow() - oldest).total_seconds())
        yield GaugeMetricFamily(
            "portal_outbox_pending", "Messages waiting to be delivered.", value=pending
        )
        yield GaugeMetricFamily(
            "portal_outbox_oldest_pending_age_seconds",
            "Age of the oldest message still waiting (0 when none).",
            value=age,
        )
        yield GaugeMetricFamily(
            "portal_outbox_dead",
            "Messages parked as dead (see `portal outbox list --dead`).",
            value=dead,
        )


class BureauCollector:
    """Whether the back office's /healthz answers, probed at scrape time.

    A metric, not a readiness check: the portal serves citizens while the back office is
    down (the outbox holds what must reach it), so an alert, not the load balancer, acts.
    """

    def __init__(self, bureau_url: str, timeout: float = 2.0) -> None:
        self.url = bureau_url.rstrip("/") + "/healthz"
        self.timeout = timeout

    def collect(self) -> Iterable[Any]:
        import httpx
        from prometheus_client.core import GaugeMetricFamily

        started = time.perf_counter()
        try:
            up = httpx.get(self.url, timeout=self.timeout).status_code < 500
        except httpx.HTTPError:
            up = False
        yield GaugeMetricFamily(
            "portal_bureau_up",
            "1 when the back office's /healthz answered this scrape, else 0.",
            value=1 if up else 0,
        )
        yield GaugeMetricFamily(
            "portal_bureau_probe_seconds",
            "Time the probe of the back office's /healthz took (up to its 2 s timeout).",
            value=time.perf_counter() - started,
        )


def exposition(db: Any, bureau_url: str | None = None) -> bytes:
    """The text format of one scrape: every worker's request counts plus the outbox gauges
    (and, given its URL, whether the back office answers)."""
    from prometheus_client import CollectorRegistry, generate_latest

    # No auto-describe: it would run the outbox query once more at registration.
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for instrument in instruments():
            registry.register(instrument)
    registry.register(OutboxCollector(db))
    if bureau_url:
        registry.register(BureauCollector(bureau_url))
    return generate_latest(registry)


def client_allowed(host: str | None) -> bool:
    """Loopback and private networks only (the address uvicorn settled on after proxy headers)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return address.is_loopback or address.is_private


router = Router(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format, for scrapers on loopback or a private network."""
    host = request.client.host if request.client else None
    if not client_allowed(host):
        # The same answer as any unknown page: the endpoint's existence is not advertised.
        return PlainTextResponse("Not Found", status_code=404)
    from prometheus_client import CONTENT_TYPE_LATEST

    body = exposition(request.app.state.db, request.app.state.settings.bureau_url)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
