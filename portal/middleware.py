"""Pure ASGI middleware: body limits, security headers, request ids and the access log."""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.errors import BodyTooLarge

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("portal.access")

# Forms and JSON are small: the largest real one (an application with every field) is a
# few kilobytes. Files come as multipart, streamed to disk, and have their own limit.
MAX_TEXT_BODY = 1024 * 1024
TEXT_TOO_LARGE = "提交的内容过大（上限 1 MB），请精简后重试；文件请用上传功能提交。"

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


class BodyLimit:
    """Every request body counted as it arrives and cut off at its limit: 413.

    Content-Length alone is no limit: a chunked body declares none, and Starlette's
    `request.body()` would read all of it into memory, before any route could look at
    the signature or the token. So the bytes are counted as the server hands them
    over: a declared length over the limit fails the first read, and a body that
    grows past it fails the read that crosses it. Until the app reads again, uvicorn
    stops reading the socket (64 KiB buffered), so memory stays bounded whoever sends.

    Multipart bodies (uploads, streamed to disk by `materials.upload`) may be as large as
    a file plus the form around it; anything else, 1 MiB. The failed read raises
    `BodyTooLarge`, which the app's handlers answer like any TooLarge (JSON under /api/,
    the error page elsewhere). Whoever turned it into another answer (FastAPI makes a
    body it could not read a 400), the 413 is sent instead. The answer closes the
    connection: the rest of the body is never read.
    """

    def __init__(self, app: ASGIApp, *, upload_limit: int, upload_message: str) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.upload_message = upload_message

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                kind = value.split(b";", 1)[0].strip().lower()
                if kind == b"multipart/form-data":
                    return self.upload_limit, self.upload_message
                break
        return MAX_TEXT_BODY, TEXT_TOO_LARGE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, message = self.limit_for(scope)
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
                break
        state = {"received": 0, "over": False, "started": False, "replaced": False}

        def refuse() -> BodyTooLarge:
            state["over"] = True
            return BodyTooLarge(message, code="too_large")

        async def counted_receive() -> Message:
            if state["over"] or (declared is not None and declared > limit):
                raise refuse()
            incoming = await receive()
            if incoming["type"] == "http.request":
                state["received"] += len(incoming.get("body", b""))
                if state["received"] > limit:
                    raise refuse()
            return incoming

        async def guarded_send(outgoing: Message) -> None:
            if state["replaced"]:
                return  # the body of an answer replaced by our 413
            if outgoing["type"] == "http.response.start" and state["over"]:
                if outgoing["status"] != 413:
                    state["replaced"] = True
                    await self._refuse(scope, send, message)
                    return
                MutableHeaders(scope=outgoing)["Connection"] = "close"
            if outgoing["type"] == "http.response.start":
                state["started"] = True
            await send(outgoing)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if state["started"] or state["replaced"]:
                raise
            state["replaced"] = True
            await self._refuse(scope, send, message)

    async def _refuse(self, scope: Scope, send: Send, message: str) -> None:
        """Our own 413, for when the app's handlers did not answer one."""
        if scope.get("path", "").startswith("/api/"):
            body = json.dumps(
                {"error": {"code": "too_large", "message": message}}, ensure_ascii=False
            ).encode()
            media = b"application/json"
        else:
            page = f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>提交的内容太大</title><p>{message}</p></html>'
            body = page.encode()
            media = b"text/html; charset=utf-8"
        headers = [
            (b"content-type", media),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
