"""个人信息处理规则, a copy of one's data, closing the account: pages and API (privacy.py)."""

from __future__ import annotations

import json

from fastapi import Request, Response
from pydantic import BaseModel, Field

from portal.accounts import privacy
from portal.api import ApiAccount
from portal.clock import today_cst
from portal.db import DbSession
from portal.errors import Conflict, Invalid
from portal.routing import Router
from portal.web import CsrfForm, CurrentAccount, LoggedIn, flash, redirect, render

router = Router(include_in_schema=False)
api_router = Router(prefix="/api/v1", tags=["accounts"])

CLOSE_LABELS = {"confirm": "确认注销", "password": "登录密码"}


@router.get("/privacy")
def privacy_page(request: Request, account: CurrentAccount):
    return render(
        request,
        "accounts/privacy.html",
        {
            "version": privacy.PRIVACY_VERSION,
            "facts": privacy.retention_facts(request.app.state.settings),
        },
    )


def _download(data: dict) -> Response:
    name = f"my-data-{today_cst().strftime('%Y%m%d')}.json"
    return Response(
        json.dumps(data, ensure_ascii=False, indent=1),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/account/export")
def export_page(session: DbSession, account: LoggedIn):
    return _download(privacy.export_data(session, account=account))


def _close_page(request, session, account, status_code: int = 200, **extra):
    context = {
        "summary": privacy.close_summary(session, account=account),
        "facts": privacy.retention_facts(request.app.state.settings),
        "needs_password": account.password_hash is not None,
        "labels": CLOSE_LABELS,
        **extra,
    }
    return render(request, "accounts/privacy_close.html", context, status_code=status_code)


@router.get("/account/close")
def close_page(request: Request, session: DbSession, account: LoggedIn):
    return _close_page(request, session, account)


@router.post("/account/close")
def close_submit(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
    password = form.get("password")
    try:
        errors: dict[str, str] = {}
        try:
            privacy.check_password(
                session,
                db=request.app.state.db,
                settings=request.app.state.settings,
                account=account,
                password=password if isinstance(password, str) else "",
                client_ip=request.client.host if request.client else "-",
            )
        except Invalid as exc:
            errors |= exc.fields
        if form.get("confirm") != "true":
            errors["confirm"] = "请勾选“我已了解以上内容，确认注销账户”"
        if errors:
            raise Invalid(errors)
        privacy.close_account(session, account=account)
    except (Invalid, Conflict) as exc:
        errors = exc.fields if isinstance(exc, Invalid) else {}
        return _close_page(
            request,
            session,
            account,
            exc.status,
            errors=errors,
            form_error=exc.message if isinstance(exc, Conflict) else "",
        )
    request.session.clear()
    flash(request, "您的账户已注销。已提交的办件由审批局依法保存。感谢您使用网上办事大厅。")
    return redirect("/")


# --- API ------------------------------------------------------------------------------------


class CloseIn(BaseModel):
    password: str | None = Field(default=None, max_length=128)


@api_router.get("/me/export")
def api_export(session: DbSession, account: ApiAccount) -> Response:
    """Everything the portal holds about the caller, as a JSON download (PIPL art. 45)."""
    return _download(privacy.export_data(session, account=account))


@api_router.post(
    "/me/close",
    status_code=204,
    responses={
        409: {"description": "还有正在办理的办件"},
        422: {"description": "密码缺失或不正确"},
        429: {"description": "失败次数过多"},
    },
)
def api_close(body: CloseIn, request: Request, session: DbSession, account: ApiAccount) -> Response:
    """Close the caller's account (PIPL art. 47): drafts, library, messages deleted,
    sessions and tokens ended; submitted cases kept. Accounts with a password give it."""
    privacy.check_password(
        session,
        db=request.app.state.db,
        settings=request.app.state.settings,
        account=account,
        password=body.password or "",
        client_ip=request.client.host if request.client else "-",
    )
    privacy.close_account(session, account=account)
    return Response(status_code=204)
