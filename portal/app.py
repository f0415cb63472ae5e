"""The application factory: middleware, routers, error handlers, background dispatcher."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from portal.api import validation_error_body
from portal.composition import build_dispatcher, build_scheduled_jobs, install_hooks
from portal.db import Database
from portal.errors import Busy, DomainError, Invalid
from portal.materials.storage import open_store
from portal.materials.upload import MULTIPART_OVERHEAD, too_large_message
from portal.metrics import RequestMetrics
from portal.middleware import (
    BodyLimit,
    RequestContext,
    SecurityHeaders,
    apply_security_headers,
)
from portal.resources import STATIC_DIR
from portal.settings import Settings, get_settings
from portal.web import LoginRequired, csrf_valid, flash, redirect, render, templates

log = logging.getLogger(__name__)

ERROR_TITLES = {
    401: "请先登录",
    403: "无法完成操作",
    404: "页面不存在",
    409: "当前状态不允许此操作",
    413: "文件太大",
    415: "文件类型不支持",
    422: "提交的内容有误",
    429: "操作太频繁",
    503: "系统繁忙",
}

# What FastAPI says when a JSON body cannot be decoded at all (e.g. it is not UTF-8).
BODY_PARSE_ERROR = "There was an error parsing the body"

HTTP_MESSAGES = {
    400: "请求有误。",
    401: "请先登录。",
    403: "没有权限访问此页面。",
    404: "页面不存在，或者您无权查看。",
    405: "不支持此操作。",
    413: "提交的内容太大。",
    415: "不支持的文件类型。",
    429: "操作太频繁，请稍后再试。",
}


class CachedStatic(StaticFiles):
    """Static files with a content hash in the URL may be cached for a year."""

    def file_response(
        self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "public, max-age=3600"
        return response


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_response(request: Request, status: int, body: dict[str, Any], headers=None) -> Response:
    if _wants_json(request):
        return JSONResponse(body, status_code=status, headers=headers)
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": ERROR_TITLES.get(status, "出错了"),
            "message": body["error"]["message"],
            "fields": body["error"].get("fields"),
        },
        status_code=status,
        headers=headers,
    )


NUL_MESSAGE = "请求中含有无效字符（空字符），请检查后重试。"
NUL_FIELD = "含有无效字符（空字符），请删除后重新填写"
TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded")
BUREAU_CALLBACKS = "/api/bureau/"  # a form or JSON body; files come as multipart, streamed


def _nul_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of the strings holding NUL in a parsed JSON body (keys included)."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found += [where] if "\x00" in str(key) else _nul_fields(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _nul_fields(item, f"{path}.{index}" if path else str(index))
    return found


async def refuse_nul_characters(request: Request) -> None:
    """A NUL character is never part of a real case number, name or address.

    PostgreSQL cannot store or even compare text holding one (a 500 there, while
    SQLite would keep it): refuse it up front in the path, the query and small text
    bodies, the same on every backend, naming the fields that hold it. Multipart
    uploads are streamed and not read here. Every body's size is BodyLimit's (413).
    """
    if "\x00" in request.url.path or "\x00" in unquote(request.url.query):
        raise Invalid({}, NUL_MESSAGE)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method not in ("POST", "PUT", "PATCH") or content_type not in TEXT_BODIES:
        return
    if request.url.path.startswith(BUREAU_CALLBACKS):
        return  # signed: checked there, after the signature (401 comes first)
    # Cached on the request: the route reads the same bytes. At most 1 MiB of them:
    # BodyLimit fails the read past that.
    body = await request.body()
    if b"\x00" not in body and b"\\u0000" not in body and b"%00" not in body:
        return
    if content_type == "application/json":
        try:
            fields = _nul_fields(json.loads(body))
        except (ValueError, RecursionError):  # not JSON, or nested too deep to walk
            fields = ["body"]
    else:
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        fields = [name for name, value in pairs if "\x00" in name + value] or ["body"]
    raise Invalid(dict.fromkeys(fields, NUL_FIELD), NUL_MESSAGE)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DataError)
    async def unsavable_input(request: Request, exc: DataError) -> Response:
        # Input the database cannot store (a NUL in a text field, a number out of range)
        # that got past validation: the citizen's request is wrong, not the portal.
        log.warning(
            "database refused input on %s %s: %s",
            request.method,
            request.url.path,
            type(exc.orig).__name__,
        )
        body = {
            "error": {
                "code": "invalid",
                "message": "提交的内容中含有无法保存的字符或数值，请检查后重新提交。",
            }
        }
        return _error_response(request, 422, body)

    @app.exception_handler(PoolTimeout)
    async def no_connection(request: Request, exc: PoolTimeout) -> Response:
        # The admission gates (portal/db.py) keep requests under the pool's size, so this
        # is the rest of the process (dispatcher, jobs) crowding it: busy, not broken.
        log.warning(
            "no database connection within the wait on %s %s", request.method, request.url.path
        )
        return await domain_error(request, Busy())

    @app.exception_handler(OperationalError)
    async def database_busy(request: Request, exc: OperationalError) -> Response:
        # SQLite's lock still held by another process (a second worker, `portal worker`)
        # after busy_timeout: the citizen may simply try again.
        if "locked" in str(exc.orig) or "busy" in str(exc.orig):
            log.warning("database locked past the wait on %s %s", request.method, request.url.path)
            return await domain_error(request, Busy())
        raise exc

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        return _error_response(request, exc.status, exc.to_json(), exc.headers or None)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        from portal.accounts import kept_forms

        target = exc.next_url
        if exc.request is not None and request.method == "POST":
            # After sign-in, the form's page (a POST-only path would be a 405), with the
            # fields it held when they could be kept.
            posted = exc.request
            target = (
                await kept_forms.after_timeout(
                    posted, csrf_ok=lambda token: csrf_valid(posted, token)
                )
                or "/cases"
            )
            if "kept=" in target:
                flash(request, kept_forms.TIMED_OUT_MESSAGE, "warning")
        return redirect(f"/login?next={quote(target, safe='/')}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _error_response(request, 422, validation_error_body(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, DomainError):
            # FastAPI makes any failure to read the body a 400; when the read failed because
            # the body went past its limit (BodyLimit), the answer is that 413.
            return await domain_error(request, exc.__cause__)
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR and _wants_json(request):
            # A JSON body that is not even UTF-8: malformed like any other bad JSON (422).
            body = {
                "error": {
                    "code": "invalid",
                    "message": "请求体不是有效的 JSON。",
                    "fields": {"body": "请求体不是有效的 UTF-8 编码 JSON"},
                }
            }
            return _error_response(request, 422, body)
        message = HTTP_MESSAGES.get(exc.status_code, "请求无法处理。")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(
            request, exc.status_code, {"error": {"code": code, "message": message}}, exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        rid = request.scope.get("state", {}).get("request_id", "-")
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {
            "error": {
                "code": "internal",
                "message": f"系统暂时无法处理您的请求，请稍后再试。如需帮助请拨打 12345，并告知编号 {rid}。",
            }
        }
        try:
            response = _error_response(request, 500, body)
        except Exception:  # the error page itself failed: plain text still helps
            response = Response(body["error"]["message"], status_code=500, media_type="text/plain")
        # Sent from outside every middleware of ours: the headers they would add, added here.
        apply_security_headers(response.headers, https=request.app.state.settings.https)
        response.headers["X-Request-ID"] = rid
        return response


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = database or Database(
        settings.database_url,
        readers=settings.db_readers,
        writers=settings.db_writers,
        queue=settings.db_queue,
        wait_seconds=settings.db_wait_seconds,
    )
    install_hooks()
    if settings.test_clock_days:  # dev mode only (Settings.prepare refuses it elsewhere)
        from portal.clock import shift_dates

        shift_dates(settings.test_clock_days)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from portal.calendar import service as calendar_service

        # The calendar an operator loaded (`portal calendar load`), then kept fresh.
        await run_in_threadpool(calendar_service.refresh, db)
        calendar_task = asyncio.create_task(calendar_service.keep_fresh(db), name="calendar")
        tasks = [calendar_task]
        if settings.dispatcher:
            # The outbox and the daily retention job run wherever the dispatcher does.
            dispatcher = build_dispatcher(settings, db)
            app.state.dispatcher = dispatcher
            jobs = build_scheduled_jobs(settings, db)
            tasks.append(asyncio.create_task(dispatcher.run(), name="outbox-dispatcher"))
            tasks += [asyncio.create_task(job.run()) for job in jobs]
        try:
            yield
        finally:
            if settings.dispatcher:
                app.state.dispatcher.stop()
                for job in jobs:
                    job.stop()
            for task in tasks:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            if database is None:
                db.dispose()

    app = FastAPI(
        title="行政审批局网上办事大厅 API",
        version="1.0.0",
        description="Citizen JSON API v1 (docs/citizen-api.md) and the bureau callback endpoint.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_nul_characters)],
    )
    app.state.settings = settings
    app.state.db = db
    templates.env.auto_reload = settings.reload_templates
    app.state.store = open_store(settings)

    # Order: the last added runs first. RequestContext wraps everything, so the
    # request id exists before any other middleware logs. BodyLimit is innermost, so
    # even its own 413 gets the headers, the session and the request id of the rest.
    app.add_middleware(
        BodyLimit,
        upload_limit=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        upload_message=too_large_message(settings.max_upload_bytes),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="portal_session",
        max_age=settings.session_absolute_hours * 3600,
        same_site="lax",
        https_only=settings.https,
    )
    app.add_middleware(GZipMiddleware, minimum_size=600)
    app.add_middleware(SecurityHeaders, https=settings.https)
    # Inside RequestContext, outside the rest: times every answer, gzip included.
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestContext)

    install_error_handlers(app)
    app.mount("/static", CachedStatic(directory=str(STATIC_DIR)), name="static")

    from portal import routers

    for router in routers.all_routers():
        app.include_router(router)
    return app
