"""Account pages: register, log in, log out, my account."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from portal.accounts import authorisations, identity, privacy, service
from portal.accounts.filing import VERIFIED_LEVEL
from portal.catalogue.service import all_items
from portal.db import DbSession, RowId
from portal.errors import Conflict, Invalid, NotFound, Throttled, Unauthenticated
from portal.routing import Router
from portal.verification.service import CodeProof
from portal.web import CsrfForm, CurrentAccount, LoggedIn, flash, redirect, render, safe_next

router = Router(include_in_schema=False)

REGISTER_LABELS = {
    "kind": "申请人类型",
    "name": "姓名或企业名称",
    "id_number": "证件号码",
    "phone": "手机号码",
    "code": "短信验证码",
    "password": "密码",
    "agent_name": "经办人姓名",
    "agent_id_number": "经办人身份证号码",
    privacy.CONSENT_FIELD: "个人信息处理规则",
}


def _text(form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _sso(request: Request) -> bool:
    """Whether the 统一身份认证 button shows (PORTAL_SSO_ISSUER set)."""
    return request.app.state.settings.sso_enabled


@router.get("/register")
def register_page(request: Request, account: CurrentAccount, next: str = ""):
    return render(
        request,
        "accounts/register.html",
        {"labels": REGISTER_LABELS, "next": next, "sso_enabled": _sso(request)},
    )


@router.post("/register")
def register_submit(request: Request, session: DbSession, form: CsrfForm):
    values = {name: _text(form, name) for name in REGISTER_LABELS}
    password = form.get("password")
    reg = service.Registration(
        kind=values["kind"],
        name=values["name"],
        id_number=values["id_number"],
        phone=values["phone"],
        password=password if isinstance(password, str) else "",
        agent_name=values["agent_name"] or None,
        agent_id_number=values["agent_id_number"] or None,
    )
    values.pop("password")
    next_url = _text(form, "next")
    settings = request.app.state.settings
    proof = None
    if values["code"] or settings.register_code_required:
        proof = CodeProof(request.app.state.db, settings, purpose="register", code=values["code"])
    try:
        if values[privacy.CONSENT_FIELD] != "true":
            # Checked before anything is looked up or counted: no account without consent.
            problems = service.validate_registration(reg)
            raise Invalid(problems | {privacy.CONSENT_FIELD: privacy.CONSENT_MISSING})
        account = service.register_account(
            session,
            db=request.app.state.db,
            reg=reg,
            client_ip=request.client.host if request.client else "-",
            proof=proof,
        )
        privacy.record_consent(account)
    except (Invalid, Conflict, Throttled) as exc:
        return render(
            request,
            "accounts/register.html",
            {
                "errors": exc.fields,
                "values": values,
                "labels": REGISTER_LABELS,
                "next": next_url,
                "form_error": exc.message if isinstance(exc, Throttled) else "",
                "sso_enabled": _sso(request),
            },
            status_code=exc.status,
            headers=exc.headers or None,
        )
    _log_in(request, session, account)
    flash(request, "注册成功，已为您登录。")
    return redirect(safe_next(next_url))


def _log_in(request: Request, session, account) -> None:
    # A fresh session on login: the old cookie (and its CSRF token) is not carried over.
    request.session.clear()
    login = service.start_login_session(session, account=account)
    request.session["sid"] = login.id


@router.get("/login")
def login_page(request: Request, account: CurrentAccount, next: str = ""):
    return render(request, "accounts/login.html", {"next": next, "sso_enabled": _sso(request)})


@router.post("/login")
def login_submit(request: Request, session: DbSession, form: CsrfForm):
    phone = _text(form, "phone")
    password = form.get("password")
    next_url = _text(form, "next")
    try:
        account = service.authenticate(
            session,
            db=request.app.state.db,
            settings=request.app.state.settings,
            phone=phone,
            password=password if isinstance(password, str) else "",
            client_ip=request.client.host if request.client else "-",
        )
    except (Unauthenticated, Throttled) as exc:
        return render(
            request,
            "accounts/login.html",
            {
                "login_error": exc.message,
                "values": {"phone": phone},
                "next": next_url,
                "sso_enabled": _sso(request),
            },
            status_code=exc.status,
            headers=exc.headers or None,
        )
    _log_in(request, session, account)
    return redirect(safe_next(next_url))


@router.post("/logout")
def logout(request: Request, session: DbSession, form: CsrfForm):
    sid = request.session.get("sid")
    if sid:
        service.end_login_session(session, sid=sid)
    request.session.clear()
    flash(request, "您已安全退出。")
    return redirect("/")


def _account_context(account) -> dict:
    return {
        "verified_text": identity.verification_text(account),
        "needs_password": account.password_hash is None,
    }


@router.get("/account")
def account_page(request: Request, account: LoggedIn):
    return render(request, "accounts/account.html", _account_context(account))


@router.post("/account/password")
def first_password(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
    password = form.get("password")
    try:
        identity.set_first_password(
            session, account=account, password=password if isinstance(password, str) else ""
        )
    except Invalid as exc:
        return render(
            request,
            "accounts/account.html",
            {**_account_context(account), "errors": exc.fields},
            status_code=exc.status,
        )
    flash(request, "密码已设置，今后也可以用手机号码和密码登录。")
    return redirect("/account")


# --- 委托授权 (identity.md): a legal person's agents; an agent's enterprises --------------

AUTH_LABELS = {"agent_phone": "经办人手机号码", "items": "授权事项", "valid_to": "授权截止日期"}


def _authorisations_page(request, session, account, status_code=200, **extra):
    items = [i for i in all_items(session) if i.online]
    context = {
        "rows": authorisations.listed(session, account=account),
        "items": items,
        "item_names": {i.code: i.name for i in items},
        "may_grant": account.kind == "enterprise" and account.trust_level >= VERIFIED_LEVEL,
        "sso_enabled": _sso(request),
        "errors": {},
        "values": {},
        "labels": AUTH_LABELS,
        **extra,
    }
    return render(request, "accounts/authorisations.html", context, status_code=status_code)


@router.get("/account/authorisations")
def authorisations_page(request: Request, session: DbSession, account: LoggedIn):
    return _authorisations_page(request, session, account)


@router.post("/account/authorisations")
def grant_authorisation(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
    scope = _text(form, "scope")
    chosen = [v for v in form.getlist("items") if isinstance(v, str)]
    values: dict[str, Any] = {
        "agent_phone": _text(form, "agent_phone"),
        "valid_to": _text(form, "valid_to"),
        "scope": scope,
        "items": chosen,
    }
    try:
        authorisations.grant(
            session,
            enterprise=account,
            agent_phone=values["agent_phone"],
            items="all" if scope == "all" else chosen,
            valid_to=values["valid_to"],
        )
    except (Invalid, NotFound) as exc:
        session.rollback()
        errors = exc.fields if isinstance(exc, Invalid) else {"agent_phone": exc.message}
        return _authorisations_page(
            request, session, account, exc.status, errors=errors, values=values
        )
    flash(request, "已授权。经办人登录后，可在申请事项时选择以本单位名义办理。")
    return redirect("/account/authorisations")


@router.post("/account/authorisations/{authorisation_id}/revoke")
def revoke_authorisation(
    request: Request,
    authorisation_id: RowId,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
):
    authorisations.revoke(session, enterprise=account, authorisation_id=authorisation_id)
    flash(request, "已撤销授权。经办人为本单位保存的草稿仍保留，但不能再提交。")
    return redirect("/account/authorisations")
