"""Shared plumbing of the HTML pages: templates, CSRF, flash messages, the logged-in account."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from markupsafe import Markup
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.templating import Jinja2Templates

from portal.accounts.models import Account, LoginSession
from portal.cases import procedure
from portal.clock import format_cst, to_cst, utcnow
from portal.db import DbSession
from portal.errors import Forbidden
from portal.notifications.service import unread_count, unread_query
from portal.resources import STATIC_DIR, TEMPLATES_DIR
from portal.security import mask_id, mask_phone

CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """Raised on a page that needs a login; the handler redirects to the login page."""

    def __init__(self, next_url: str, request: Request | None = None) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        # The request the route saw (its body already read), so the handler can keep a
        # form posted after the login timed out (portal/accounts/kept_forms.py).
        self.request = request


@lru_cache(maxsize=256)
def _static_version(path: str) -> str:
    try:
        return hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


def static_url(path: str) -> str:
    """A cache-busting URL: the file's hash in the query, so it can be cached for a year."""
    return f"/static/{path}?v={_static_version(path)}"


def _cn_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = to_cst(value).date()
    return f"{value.year}年{value.month}月{value.day}日"


def tel_link(number: Any) -> Markup:
    """A phone number a thumb can call: 0519-86312345 → <a href="tel:051986312345">."""
    text = str(number or "").strip()
    digits = "".join(ch for ch in text if ch.isascii() and ch.isdigit())
    if not 3 <= len(digits) <= 15:
        return Markup("{}").format(text)
    return Markup('<a class="tel" href="tel:{}">{}</a>').format(digits, text)


def _build_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.globals["static_url"] = static_url
    env.globals["procedure"] = procedure
    env.filters["cst"] = format_cst
    env.filters["cn_date"] = _cn_date
    env.filters["mask_id"] = mask_id
    env.filters["mask_phone"] = mask_phone
    env.filters["urlquote"] = lambda s: quote(str(s), safe="")
    env.filters["tel"] = tel_link
    env.trim_blocks = True
    env.lstrip_blocks = True
    return templates


templates = _build_templates()


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def csrf_valid(request: Request, submitted: str | None) -> bool:
    expected = request.session.get("csrf")
    if not expected or not submitted:
        return False
    return hmac.compare_digest(str(expected).encode(), submitted.encode())


def flash(request: Request, message: str, kind: str = "success") -> None:
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Any:
    ctx = dict(context or {})
    token = csrf_token(request)
    ctx.setdefault("csrf_token", token)
    ctx["csrf_input"] = Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, token
    )
    ctx.setdefault("account", getattr(request.state, "account", None))
    ctx.setdefault("unread", getattr(request.state, "unread", 0))
    ctx.setdefault("elder", request.cookies.get("display") == "elder")  # 长辈版 (portal.display)
    ctx["flashes"] = request.session.pop("flash", [])
    if kept := getattr(request.state, "kept_fields", None):
        from portal.accounts import kept_forms

        ctx["values"] = kept_forms.overlay(ctx.get("values") or {}, kept)
        ctx["flashes"].append({"kind": "warning", "message": kept_forms.RESTORED_MESSAGE})
    ctx.setdefault("idle_minutes", request.app.state.settings.session_idle_minutes)
    ctx.setdefault("max_upload_mb", request.app.state.settings.max_upload_mb)
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)


def redirect(url: str) -> RedirectResponse:
    """Post/redirect/get: always 303, so a refresh never re-submits."""
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None, default: str = "/cases") -> str:
    """Only same-site paths, so a crafted ?next= cannot send the user elsewhere."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return default


async def csrf_form(request: Request) -> FormData:
    """The submitted form, once its CSRF token matches the session's (403 otherwise)."""
    form = await request.form(max_files=0, max_fields=500)
    token = form.get(CSRF_FIELD)
    if not csrf_valid(request, token if isinstance(token, str) else None):
        raise Forbidden("页面已过期或来源不明，请返回上一页刷新后重新提交。", code="csrf")
    return form


CsrfForm = Annotated[FormData, Depends(csrf_form)]


def _session_account(request: Request, session: DbSession) -> Account | None:
    if hasattr(request.state, "account"):
        return request.state.account
    request.state.account = None
    sid = request.session.get("sid")
    if not sid:
        return None
    settings = request.app.state.settings
    # The login, its account and the account's unread count in one statement: every
    # page a logged-in citizen opens starts here, so each statement saved counts.
    found = session.execute(
        select(LoginSession, Account, unread_query(LoginSession.account_id).scalar_subquery())
        .join(Account, Account.id == LoginSession.account_id)
        .where(LoginSession.id == sid)
    ).first()
    row = cast("tuple[LoginSession, Account, int] | None", found)  # the subquery hides types
    login: LoginSession | None = None
    account: Account | None = None
    unread = 0
    if row is not None:
        login, account, unread = row
    now = utcnow()
    if (
        login is None
        or login.ended_at is not None
        or now - login.created_at > timedelta(hours=settings.session_absolute_hours)
        or now - login.last_seen_at > timedelta(minutes=settings.session_idle_minutes)
    ):
        if login is not None and login.ended_at is None:
            # Timed out, not logged out: a form posted now is kept for this account.
            request.state.expired_account_id = login.account_id
        request.session.pop("sid", None)
        return None
    if now - login.last_seen_at > timedelta(minutes=1):
        if session.info.get("write"):
            login.last_seen_at = now
        else:
            # Its own short write, at most once a minute, so a page view stays a read
            # (and on SQLite never holds the write lock).
            with request.app.state.db.session(write=True) as w, w.begin():
                fresh = w.get(LoginSession, sid)
                if fresh is not None:
                    fresh.last_seen_at = now
    if account is not None and account.closed_at is not None:
        request.session.pop("sid", None)
        return None
    request.state.account = account
    request.state.unread = unread
    return account


def optional_account(request: Request, session: DbSession) -> Account | None:
    account = _session_account(request, session)
    if account is not None:
        if not hasattr(request.state, "unread"):  # an account found another way (a token)
            request.state.unread = unread_count(session, account=account)
        from portal.accounts import kept_forms

        kept_forms.restore(request, session, account)
    return account


def require_account(request: Request, session: DbSession) -> Account:
    account = optional_account(request, session)
    if account is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target, request)
    return account


CurrentAccount = Annotated[Account | None, Depends(optional_account)]
LoggedIn = Annotated[Account, Depends(require_account)]


def stored_file_headers(content_type: str, filename: str, size: int) -> dict[str, str]:
    """Headers for showing a citizen's own stored file (a scan, a photo) in the browser.

    An image is sandboxed: nothing in it could run even if a browser mis-read it. A
    PDF is not: Chrome shows PDFs with a plugin, and a sandboxed document may not
    load plugins, so the scan would only show as blocked. Its content was checked on
    upload (no JavaScript, launch actions or embedded files), `nosniff` holds it to
    application/pdf, and it may still load nothing from anywhere.
    """
    policy = "default-src 'none'; img-src 'self'; object-src 'self'"
    if content_type != "application/pdf":
        policy = "sandbox; " + policy
    return {
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}",
        "Content-Length": str(size),
        "Content-Security-Policy": policy,
        "Cache-Control": "private, no-store",
    }
