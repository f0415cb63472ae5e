"""Verification JSON API: asking for an SMS code, resetting a password with one."""

from __future__ import annotations

from fastapi import BackgroundTasks, Request, Response

from portal.db import DbSession
from portal.routing import Router
from portal.verification import service, sms
from portal.verification.schemas import PasswordResetIn, VerificationIn, VerificationOut

router = Router(prefix="/api/v1", tags=["accounts"])


def client_address(request: Request) -> str:
    # uvicorn already replaced the peer by X-Forwarded-For when it came from a trusted
    # proxy (PORTAL_FORWARDED_ALLOW_IPS), as for every other throttle.
    return request.client.host if request.client else "-"


def send_after_commit(request: Request, background: BackgroundTasks, issued) -> None:
    """The code leaves right after the answer (the request has committed by then)."""
    if issued.message_id is not None:
        background.add_task(
            sms.send_now, request.app.state.settings, request.app.state.db, issued.message_id
        )


@router.post(
    "/verifications",
    status_code=202,
    response_model=VerificationOut,
    responses={
        422: {"description": "手机号或用途有误"},
        429: {"description": "获取验证码过于频繁（带 Retry-After）"},
        503: {"description": "短信验证码服务未开通"},
    },
)
def api_request_code(
    body: VerificationIn, request: Request, session: DbSession, background: BackgroundTasks
) -> dict:
    """Send a 6-digit SMS code for `register`, `login` or `reset`; the same answer whether
    or not the phone is registered."""
    issued = service.request_code(
        session,
        settings=request.app.state.settings,
        phone=body.phone,
        purpose=body.purpose,
        client_ip=client_address(request),
    )
    send_after_commit(request, background, issued)
    return {"expires_in": issued.expires_in, "resend_after": issued.resend_after}


@router.post(
    "/password-resets",
    status_code=204,
    responses={422: {"description": "验证码不正确或已失效，或新密码不符合要求"}},
)
def api_reset_password(body: PasswordResetIn, request: Request, session: DbSession) -> Response:
    """A new password with a `reset` code; every session and token of the account ends."""
    service.reset_password(
        session,
        db=request.app.state.db,
        settings=request.app.state.settings,
        phone=body.phone,
        code=body.code,
        password=body.password,
    )
    return Response(status_code=204)
