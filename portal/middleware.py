"""Pure ASGI middleware: security headers, request ids and the access log."""

from __future__ import annotations

import contextvars
import logging
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("portal.access")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def apply_security_headers(headers: MutableHeaders, *, https: bool) -> None:
    """The headers of every answer; a route may set its own CSP, but never without these two:
    no plugins unless it says so (inline PDFs need Chrome's viewer), and no framing at all."""
    policy = headers.get("Content-Security-Policy")
    if policy is None:
        headers["Content-Security-Policy"] = CSP
    else:
        directives = {part.split()[0] for part in policy.split(";") if part.strip()}
        if "frame-ancestors" not in directives:
            policy += "; frame-ancestors 'none'"
        if "object-src" not in directives:
            policy += "; object-src 'none'"
        headers["Content-Security-Policy"] = policy
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "geolocation=(), microphone=(), payment=(), usb=()")
    headers.setdefault("Cache-Control", "no-store")
    if https:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """Headers every response carries; HTML is private (no-store) unless a route says otherwise.

    A 500 answer is sent by Starlette's outermost error middleware, past this one:
    its handler (portal.app) calls `apply_security_headers` itself.
    """

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                apply_security_headers(MutableHeaders(scope=message), https=self.https)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestContext:
    """A request id for every request (kept from X-Request-ID when sane) and one access line.

    The access line carries the path without its query string: queries may hold
    personal data (a phone's last digits, a signed status token).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if incoming.isalnum() and len(incoming) <= 64 else secrets.token_hex(8)
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            access_log.info(
                "%s %s %s %.1fms",
                scope.get("method"),
                scope.get("path"),
                status["code"],
                elapsed,
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status["code"],
                    "duration_ms": round(elapsed, 1),
                },
            )
            request_id_var.reset(token)
