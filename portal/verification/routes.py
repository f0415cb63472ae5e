"""Pages with SMS codes: the 获取验证码 step of registration, 短信验证码登录, 忘记密码.

Every 获取验证码 button is a second submit button of its form (`formaction`): the
step sends the code and shows the same form again, filled in, so it works with
JavaScript off.
"""

from __future__ import annotations

from typing import Any

from fastapi import BackgroundTasks, Request

from portal.accounts import routes as accounts_routes
from portal.accounts import service as accounts
from portal.db import DbSession
from portal.errors import DomainError, Invalid, Throttled, Unauthenticated
from portal.routing import Router
from portal.security import mask_phone
from portal.verification import service
from portal.verification.api import client_address, send_after_commit
from portal.web import CsrfForm, CurrentAccount, flash, redirect, render, safe_next

router = Router(include_in_schema=False)

LOGIN_LABELS = {"phone": "手机号码", "code": "短信验证码"}
RESET_LABELS = {"phone": "手机号码", "code": "短信验证码", "password": "新密码"}


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _sms(request: Request) -> dict[str, Any]:
    return {
        "sms_available": request.app.state.settings.sms_codes_available,
        "unavailable": service.UNAVAILABLE_MESSAGE,
    }


def _send(
    request: Request,
    session: Any,
    background: BackgroundTasks,
    *,
    phone: str,
    purpose: str,
    template: str,
    context: dict[str, Any],
    then: str = "",
):
    """Ask for a code and show the form again: with a notice, or with what went wrong."""
    try:
        issued = service.request_code(
            session,
            settings=request.app.state.settings,
            phone=phone,
            purpose=purpose,
            client_ip=client_address(request),
        )
    except Invalid as exc:
        return render(request, template, {**context, "errors": exc.fields}, status_code=exc.status)
    except DomainError as exc:  # Throttled (429, Retry-After) or SmsUnavailable (503)
        return render(
            request,
            template,
            {**context, "form_error": exc.message},
            status_code=exc.status,
            headers=exc.headers or None,
        )
    send_after_commit(request, background, issued)
    # Same words whether or not the phone is registered.
    notice = (
        f"验证码已发送至 {mask_phone(accounts.normalise_phone(phone))}，5 分钟内有效；"
        f"{issued.resend_after} 秒后可重新获取。{then}"
    )
    return render(request, template, {**context, "code_notice": notice})


# --- registration ----------------------------------------------------------------------


@router.post("/register/code")
def register_code(
    request: Request, session: DbSession, form: CsrfForm, background: BackgroundTasks
):
    values = {name: _text(form, name) for name in accounts_routes.REGISTER_LABELS}
    values.pop("password")
    context = {
        "values": values,
        "labels": accounts_routes.REGISTER_LABELS,
        "next": _text(form, "next"),
    }
    return _send(
        request,
        session,
        background,
        phone=values["phone"],
        purpose="register",
        template="accounts/register.html",
        context=context,
        then="请填写验证码，再填写一次密码（为安全起见不会保留），然后点击“注册”。",
    )


# --- 短信验证码登录 -------------------------------------------------------------------------


def _login_context(request: Request, phone: str, next_url: str) -> dict[str, Any]:
    return {
        **_sms(request),
        "values": {"phone": phone},
        "labels": LOGIN_LABELS,
        "next": next_url,
        "code_action": "/login/code/send",
    }


@router.get("/login/code")
def login_code_page(request: Request, account: CurrentAccount, next: str = ""):
    return render(request, "verification/login_code.html", _login_context(request, "", next))


@router.post("/login/code/send")
def login_code_send(
    request: Request, session: DbSession, form: CsrfForm, background: BackgroundTasks
):
    phone = _text(form, "phone")
    return _send(
        request,
        session,
        background,
        phone=phone,
        purpose="login",
        template="verification/login_code.html",
        context=_login_context(request, phone, _text(form, "next")),
    )


@router.post("/login/code")
def login_code_submit(request: Request, session: DbSession, form: CsrfForm):
    phone, code, next_url = _text(form, "phone"), _text(form, "code"), _text(form, "next")
    context = _login_context(request, phone, next_url)
    errors = {}
    if problem := accounts.phone_problem(accounts.normalise_phone(phone)):
        errors["phone"] = problem
    if problem := service.code_problem(code):
        errors["code"] = problem
    if errors:
        context["values"]["code"] = code
        return render(
            request, "verification/login_code.html", {**context, "errors": errors}, status_code=422
        )
    try:
        account = accounts.authenticate(
            session,
            db=request.app.state.db,
            settings=request.app.state.settings,
            phone=phone,
            password="",
            client_ip=client_address(request),
            proof=service.CodeProof(
                request.app.state.db, request.app.state.settings, purpose="login", code=code
            ),
        )
    except (Unauthenticated, Throttled) as exc:
        return render(
            request,
            "verification/login_code.html",
            {**context, "form_error": exc.message},
            status_code=exc.status,
            headers=exc.headers or None,
        )
    accounts_routes._log_in(request, session, account)
    return redirect(safe_next(next_url))


# --- 忘记密码 ---------------------------------------------------------------------------------


def _reset_context(request: Request, phone: str) -> dict[str, Any]:
    return {
        **_sms(request),
        "values": {"phone": phone},
        "labels": RESET_LABELS,
        "code_action": "/password-reset/send",
    }


@router.get("/password-reset")
def reset_page(request: Request, account: CurrentAccount):
    return render(request, "verification/reset.html", _reset_context(request, ""))


@router.post("/password-reset/send")
def reset_send(request: Request, session: DbSession, form: CsrfForm, background: BackgroundTasks):
    phone = _text(form, "phone")
    return _send(
        request,
        session,
        background,
        phone=phone,
        purpose="reset",
        template="verification/reset.html",
        context=_reset_context(request, phone),
    )


@router.post("/password-reset")
def reset_submit(request: Request, session: DbSession, form: CsrfForm):
    phone, code = _text(form, "phone"), _text(form, "code")
    password = form.get("password")
    try:
        service.reset_password(
            session,
            db=request.app.state.db,
            settings=request.app.state.settings,
            phone=phone,
            code=code,
            password=password if isinstance(password, str) else "",
        )
    except Invalid as exc:
        context = _reset_context(request, phone)
        context["values"]["code"] = code
        return render(
            request,
            "verification/reset.html",
            {**context, "errors": exc.fields},
            status_code=exc.status,
        )
    # Every session of the account has ended, this browser's included.
    request.session.clear()
    flash(request, "密码已重置，所有设备上的登录均已退出。请用新密码登录。")
    return redirect("/login")
