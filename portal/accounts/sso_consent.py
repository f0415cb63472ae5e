"""The consent page between the identity platform's answer and the first sign-in.

On a first 统一身份认证 sign-in (no account has this platform `sub` and consented yet)
the checked identity waits server-side, in a `kept_forms` row of purpose "sso" named
by a signed reference in the page session, until the citizen agrees to the
个人信息处理规则; only then is the account created or linked. Declining, or waiting
past `PENDING_MINUTES`, leaves nothing behind but the expired row.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta

from fastapi import Request
from sqlalchemy import delete, select
from starlette.concurrency import run_in_threadpool

from portal.accounts.identity import LEVEL_NAMES, VerifiedIdentity, sign_in_verified
from portal.accounts.models import Account, KeptForm
from portal.accounts.privacy import CONSENT_FIELD, PRIVACY_VERSION, record_consent
from portal.accounts.service import start_login_session
from portal.clock import utcnow
from portal.errors import DomainError
from portal.routing import Router
from portal.security import Signer
from portal.web import CsrfForm, flash, redirect, render, safe_next

router = Router(include_in_schema=False)

CONSENT_PATH = "/login/sso/consent"
SESSION_KEY = "sso_pending"
PENDING_MINUTES = 15
CONSENT_NEEDED = "请阅读并勾选同意《个人信息处理规则》后继续；不同意的，请选择“不同意，返回”"
EXPIRED = "统一身份认证登录已过期，请重新发起登录。"


def _signer(request: Request) -> Signer:
    return Signer(request.app.state.settings.secret_key, "sso-consent", PENDING_MINUTES * 60)


def needs_consent(request: Request, identity: VerifiedIdentity) -> bool:
    """Whether this is the first sign-in of the identity (or its account never consented)."""
    with request.app.state.db.session() as session:
        account = session.scalars(
            select(Account).where(Account.sso_subject == identity.sub)
        ).first()
        return account is None or account.privacy_consented_at is None


def hold(request: Request, identity: VerifiedIdentity, next_url: str) -> None:
    """Keep the checked identity until the citizen answers the consent page."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    with request.app.state.db.session(write=True) as session, session.begin():
        session.execute(delete(KeptForm).where(KeptForm.expires_at < now))
        session.add(
            KeptForm(
                id=key,
                purpose="sso",
                path=CONSENT_PATH,
                data={"identity": dataclasses.asdict(identity), "next": next_url},
                expires_at=now + timedelta(minutes=PENDING_MINUTES),
            )
        )
    request.session[SESSION_KEY] = _signer(request).dumps(key)


def _pending(request: Request) -> tuple[str, VerifiedIdentity, str] | None:
    token = request.session.get(SESSION_KEY)
    key, problem = _signer(request).loads(token) if isinstance(token, str) else (None, "x")
    if problem or not isinstance(key, str):
        return None
    with request.app.state.db.session() as session:
        row = session.get(KeptForm, key)
        if row is None or row.purpose != "sso" or row.expires_at < utcnow():
            return None
        return key, VerifiedIdentity(**row.data["identity"]), str(row.data.get("next") or "")


def _drop(request: Request, key: str) -> None:
    request.session.pop(SESSION_KEY, None)
    with request.app.state.db.session(write=True) as session, session.begin():
        session.execute(delete(KeptForm).where(KeptForm.id == key))


def _page(request: Request, identity: VerifiedIdentity, errors=None, status_code: int = 200):
    return render(
        request,
        "accounts/privacy_consent.html",
        {
            "who": identity,
            "level_name": LEVEL_NAMES.get(identity.level, ""),
            "version": PRIVACY_VERSION,
            "errors": errors or {},
            "labels": {CONSENT_FIELD: "个人信息处理规则"},
        },
        status_code=status_code,
    )


@router.get(CONSENT_PATH)
async def consent_page(request: Request):
    pending = await run_in_threadpool(_pending, request)
    if pending is None:
        flash(request, EXPIRED, "warning")
        return redirect("/login")
    return _page(request, pending[1])


@router.post(CONSENT_PATH)
async def consent_submit(request: Request, form: CsrfForm):
    pending = await run_in_threadpool(_pending, request)
    if pending is None:
        flash(request, EXPIRED, "warning")
        return redirect("/login")
    key, identity, next_url = pending
    if form.get("action") == "decline":
        await run_in_threadpool(_drop, request, key)
        flash(request, "您未同意个人信息处理规则，未开设或关联账户，也未登录。", "warning")
        return redirect("/login")
    if form.get(CONSENT_FIELD) != "true":
        return _page(request, identity, {CONSENT_FIELD: CONSENT_NEEDED}, 422)
    await run_in_threadpool(_drop, request, key)
    return await finish_sign_in(request, identity, next_url or "/cases", consent=True)


async def finish_sign_in(
    request: Request, identity: VerifiedIdentity, next_url: str, *, consent: bool = False
):
    """Sign the verified identity in (the account linked or created) and go to `next_url`."""
    try:
        sid, created = await run_in_threadpool(_sign_in, request, identity, consent)
    except DomainError as exc:
        return render(
            request,
            "error.html",
            {"status": exc.status, "title": "统一身份认证登录未能完成", "message": exc.message},
            status_code=exc.status,
        )
    # A fresh session on login: the old cookie (and its CSRF token) is not carried over.
    request.session.clear()
    request.session["sid"] = sid
    flash(request, "已通过统一身份认证登录" + ("，并为您开设了账户。" if created else "。"))
    return redirect(safe_next(next_url))


def _sign_in(request: Request, identity: VerifiedIdentity, consent: bool) -> tuple[str, bool]:
    # The callback is a GET (the platform redirects the browser here) that writes: its
    # own write transaction, committed before the cookie names the new session.
    with request.app.state.db.session(write=True) as session, session.begin():
        account, created = sign_in_verified(session, identity=identity)
        if consent:
            record_consent(account)
        login = start_login_session(session, account=account)
        return login.id, created
