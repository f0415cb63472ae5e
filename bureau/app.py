"""The back-office application: `create_app(settings)` builds one instance with its database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bureau import auth, console, protocol, staff_api, states
from bureau.blobs import BlobStore, parse_key
from bureau.clock import format_cst
from bureau.db import Database
from bureau.errors import DomainError
from bureau.migrate import upgrade
from bureau.outbox import Dispatcher
from bureau.settings import Settings, get_settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
JSON_PREFIXES = ("/v1/", "/staff/api/")
HTML_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


class RequestIdMiddleware:
    """Tags each request with an id (kept from `X-Request-ID` when sent) and adds safe headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = {
                    b"x-request-id": request_id.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"same-origin",
                    b"x-frame-options": b"SAMEORIGIN",
                }
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    extra[b"content-security-policy"] = HTML_CSP.encode()
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(JSON_PREFIXES) or "text/html" not in request.headers.get(
        "accept", ""
    )


def _error_response(
    request: Request,
    *,
    status: int,
    code: str,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if _wants_json(request):
        error: dict[str, Any] = {"code": code, "message": message}
        if fields:
            error["fields"] = fields
        return JSONResponse({"error": error}, status_code=status, headers=headers)
    templates: Jinja2Templates = request.app.state.templates
    context = {
        "status": status,
        "message": message,
        "fields": fields or {},
        "staff": auth.session_staff(request),
        "csrf_token": auth.csrf_token(request),
        "flashes": [],
    }
    return templates.TemplateResponse(
        request, "error.html", context, status_code=status, headers=headers
    )


def _install_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return _error_response(
            request,
            status=exc.status,
            code=exc.code,
            message=exc.message,
            fields=exc.fields,
            headers=exc.headers,
        )

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, console.LoginRequired)
        return RedirectResponse(f"/staff/login?next={quote(exc.next_url)}", status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        messages = {404: "页面或资源不存在。", 405: "不支持该请求方法。"}
        message = messages.get(exc.status_code, "请求无法处理。")
        return _error_response(
            request,
            status=exc.status_code,
            code="not_found" if exc.status_code == 404 else "http_error",
            message=message,
            headers=getattr(exc, "headers", None),
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = {
            ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")): (
                "参数不正确"
            )
            for err in exc.errors()
        }
        return _error_response(
            request, status=422, code="invalid", message="请求参数不正确。", fields=fields
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        request_id = getattr(request.state, "request_id", "-")
        log.exception("unhandled error on %s %s [%s]", request.method, request.url.path, request_id)
        return _error_response(
            request,
            status=500,
            code="internal_error",
            message=f"系统出现异常，请稍后再试。如多次出现，请告知运维人员请求编号 {request_id}。",
        )

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(console.LoginRequired, login_required)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        status_label=states.status_label,
        event_labels=states.EVENT_LABELS,
        csrf_field=auth.CSRF_FIELD,
    )
    templates.env.filters["cst"] = format_cst
    return templates


def prepare_database(settings: Settings, db: Database) -> str | None:
    """Apply migrations and seed the staff account; returns a password generated for it."""
    upgrade(settings.database_url)
    with db.transaction() as session:
        return auth.seed_staff(session, settings)


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    migrate: bool = True,
) -> FastAPI:
    """Build the app. `transport` replaces the network for callbacks (tests)."""
    settings = settings.prepare() if settings is not None else get_settings()
    db = Database(settings.database_url)
    if migrate:
        generated = prepare_database(settings, db)
        if generated:
            log.warning(
                "created staff account %r with the generated password %s "
                "(shown once; set BUREAU_STAFF_PASSWORD to choose or reset it)",
                settings.staff_user,
                generated,
            )
    dispatcher = Dispatcher(db, settings, transport=transport)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task: asyncio.Task[None] | None = None
        if settings.dispatcher:
            task = asyncio.create_task(dispatcher.run(), name="bureau-outbox")
        try:
            yield
        finally:
            if task is not None:
                await dispatcher.stop(task)
            db.dispose()

    app = FastAPI(
        title="常州市武进区行政审批局 审批系统（参考实现）",
        version="1",
        lifespan=lifespan,
        docs_url="/staff/api/docs",
        redoc_url=None,
        openapi_url="/staff/api/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.store = BlobStore(settings.data_dir / "blobs", parse_key(settings.blob_key))
    app.state.dispatcher = dispatcher
    app.state.throttle = auth.LoginThrottle()
    app.state.staff_sessions = auth.StaffSessions()
    app.state.basic_cache = auth.BasicAuthCache()
    app.state.templates = _templates()

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_key,
        session_cookie="bureau_session",
        max_age=auth.SESSION_MAX_HOURS * 3600,
        same_site="lax",
        https_only=settings.https,
    )
    app.add_middleware(RequestIdMiddleware)
    _install_handlers(app)
    app.include_router(protocol.router)
    app.include_router(staff_api.router)
    app.include_router(console.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    return app
