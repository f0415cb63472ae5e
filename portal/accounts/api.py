"""Accounts JSON API: registration and bearer tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from portal.accounts import service
from portal.accounts.schemas import AccountCreatedOut, AccountIn, MeOut, TokenIn, TokenOut
from portal.api import ApiAccount, bearer_token
from portal.db import DbSession
from portal.errors import Invalid
from portal.security import mask_id, mask_phone
from portal.verification.service import CodeProof

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post(
    "/accounts",
    status_code=201,
    response_model=AccountCreatedOut,
    responses={
        409: {"description": "手机号或证件号已注册"},
        422: {"description": "内容有误"},
        429: {"description": "注册尝试过于频繁"},
    },
)
def api_register(body: AccountIn, request: Request, session: DbSession) -> dict:
    """Register a person (居民身份证) or an enterprise (统一社会信用代码), the phone proven
    by a `register` SMS code."""
    settings = request.app.state.settings
    proof = None
    if body.code is not None or settings.register_code_required:
        proof = CodeProof(request.app.state.db, settings, purpose="register", code=body.code or "")
    account = service.register_account(
        session,
        db=request.app.state.db,
        client_ip=request.client.host if request.client else "-",
        proof=proof,
        reg=service.Registration(
            kind=body.kind,
            name=body.name,
            id_number=body.id_number,
            phone=body.phone,
            password=body.password,
            agent_name=body.agent.name if body.agent else None,
            agent_id_number=body.agent.id_number if body.agent else None,
        ),
    )
    return {"account_id": account.id}


@router.post(
    "/tokens",
    response_model=TokenOut,
    responses={
        401: {"description": "手机号、密码或验证码不正确"},
        422: {"description": "内容有误"},
        429: {"description": "失败次数过多"},
    },
)
def api_token(body: TokenIn, request: Request, session: DbSession) -> dict:
    """A bearer token for phone + password, or phone + a `login` SMS code."""
    if (body.password is None) == (body.code is None):
        raise Invalid(
            {"password": "请填写密码，或改用短信验证码（code）登录，二者选一"},
            "请填写密码或短信验证码，二者选一。",
        )
    proof = None
    if body.code is not None:
        proof = CodeProof(
            request.app.state.db, request.app.state.settings, purpose="login", code=body.code
        )
    account = service.authenticate(
        session,
        db=request.app.state.db,
        settings=request.app.state.settings,
        phone=body.phone,
        password=body.password or "",
        client_ip=request.client.host if request.client else "-",
        proof=proof,
    )
    token, expires_at = service.issue_api_token(
        session, request.app.state.settings, account=account
    )
    return {"token": token, "expires_at": expires_at}


@router.delete(
    "/tokens",
    status_code=204,
    responses={401: {"description": "未登录、令牌无效或已注销"}},
)
def api_revoke_token(request: Request, session: DbSession) -> Response:
    """Log out of the API: the presented bearer token stops working at once."""
    service.revoke_api_token(session, request.app.state.settings, token=bearer_token(request))
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, responses={401: {"description": "未登录"}})
def api_me(account: ApiAccount) -> dict:
    """Who the caller is, how that was proven, and the subjects it may act for."""
    masked = mask_id(account.id_number)
    return {
        "account_id": account.id,
        "kind": account.kind,
        "name": account.name,
        "id_number": masked,
        "phone": mask_phone(account.phone),
        "verified": account.verified,
        # Itself only until authorisations (委托授权) exist: then every enterprise too.
        "subjects": [
            {
                "kind": account.kind,
                "name": account.name,
                "id_number": masked,
                "authorisation_id": None,
            }
        ],
    }
