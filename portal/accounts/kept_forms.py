"""Forms survive a session timeout: a post that met an expired login is kept, then restored.

When a page form (`application/x-www-form-urlencoded`, never a file upload) is posted
after the login timed out, its fields are kept server-side for `KEPT_MINUTES`, and the
sign-in page's `next` names the form's page with a signed, short-lived reference
(`?kept=`). After signing in, that page shows the kept values in its fields with a
message saying so; nothing is submitted for the citizen.

Guards, each for a reason:

* Only a post whose CSRF token matches the browser session's is kept: a forged
  cross-site post (which never carries the SameSite cookie) cannot plant values in a
  citizen's next sign-in.
* Only when the expired login is known: the kept form belongs to that account and is
  restored for it alone — another account signing in on the same browser sees nothing.
* Passwords, SMS codes and the CSRF token are never kept.
* Restored on the page whose path it was kept for, and only there.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy import delete
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from portal.accounts.models import Account, KeptForm
from portal.clock import utcnow
from portal.security import Signer

KEPT_MINUTES = 30  # long enough to sign in again, short enough to keep little
RESTORED_MESSAGE = "您的登录已超时，刚才填写的内容已为您保留，请核对后重新提交。"
TIMED_OUT_MESSAGE = "您的登录已超时，请重新登录。刚才填写的内容已为您保留，登录后可继续填写。"
QUERY = "kept"
CSRF_FIELD = "csrf_token"  # portal.web.CSRF_FIELD (web imports this module, not back)
NEVER_KEPT = frozenset({CSRF_FIELD, "password", "new_password", "current_password", "code", "next"})
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 500


def _signer(request: Request) -> Signer:
    return Signer(request.app.state.settings.secret_key, "kept-form", KEPT_MINUTES * 60)


def _page_of(request: Request) -> str | None:
    """The page that shows the posted form: its own path when a GET route serves it
    (the usual post-to-self), else the same-site page it was posted from."""
    path = request.url.path
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return path
    referer = urlsplit(request.headers.get("referer", ""))
    own = urlsplit(str(request.base_url))
    if referer.netloc == own.netloc and referer.path.startswith("/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return None


def _with_reference(page: str, token: str) -> str:
    return page + ("&" if "?" in page else "?") + f"{QUERY}={token}"


async def after_timeout(request: Request, *, csrf_ok: Callable[[str | None], bool]) -> str | None:
    """Where sign-in should lead after a post met no login: the form's page, with the
    kept fields' reference when they were kept; None when the post names no page.

    `csrf_ok` is the pages' own CSRF check (portal.web.csrf_valid for this request)."""
    page = _page_of(request)
    if page is None:
        return None
    account_id = getattr(request.state, "expired_account_id", None)
    if account_id is None or request.url.path.startswith("/api/"):
        return page
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return page  # an upload: its file cannot be kept, and it holds nothing else
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except HTTPException:  # a malformed or oversized form: nothing worth keeping
        return page
    token = form.get(CSRF_FIELD)
    if not csrf_ok(token if isinstance(token, str) else None):
        return page
    fields = [
        [name, value]
        for name, value in form.multi_items()
        if isinstance(value, str) and name not in NEVER_KEPT
    ]
    if not any(value.strip() for _, value in fields):
        return page
    key = secrets.token_urlsafe(32)
    path = urlsplit(page).path

    def store() -> None:
        now = utcnow()
        with request.app.state.db.session(write=True) as session, session.begin():
            session.execute(delete(KeptForm).where(KeptForm.expires_at < now))
            session.add(
                KeptForm(
                    id=key,
                    purpose="form",
                    account_id=account_id,
                    path=path,
                    data={"fields": fields},
                    expires_at=now + timedelta(minutes=KEPT_MINUTES),
                )
            )

    await run_in_threadpool(store)
    return _with_reference(page, _signer(request).dumps(key))


def restore(request: Request, session: Session, account: Account) -> None:
    """On the form's page after sign-in: the kept fields, for the account that typed them."""
    token = request.query_params.get(QUERY)
    if request.method != "GET" or not token:
        return
    key, problem = _signer(request).loads(token)
    if problem or not isinstance(key, str):
        return
    kept = session.get(KeptForm, key)
    if (
        kept is None
        or kept.purpose != "form"
        or kept.account_id != account.id
        or kept.path != request.url.path
        or kept.expires_at < utcnow()
    ):
        return
    request.state.kept_fields = kept.data.get("fields") or []


def overlay(values: dict[str, Any], fields: list[list[str]]) -> dict[str, Any]:
    """The page's `values` with the kept ones on top, in the shapes templates read:
    a name posted once is a string, several times a list; an item form's `form.<name>`
    fields replace the saved form as its post would have."""
    posted: dict[str, Any] = {}
    for name, value in fields:
        if name in posted:
            previous = posted[name]
            posted[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            posted[name] = value
    item_fields = {k.removeprefix("form."): v for k, v in posted.items() if k.startswith("form.")}
    base = dict(item_fields) if item_fields else dict(values)
    return {**base, **posted}
