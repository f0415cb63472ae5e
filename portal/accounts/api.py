"""Accounts JSON API: registration and bearer tokens."""

from __future__ import annotations

from fastapi import Request, Response

from portal.accounts import authorisations, privacy, service
from portal.accounts.schemas import (
    AccountCreatedOut,
    AccountIn,
    AuthorisationIn,
    AuthorisationListOut,
    AuthorisationOut,
    MeOut,
    TokenIn,
    TokenOut,
)
from portal.api import ApiAccount, bearer_token
from portal.db import DbSession, RowId
from portal.errors import Invalid
from portal.routing import Router
from portal.security import mask_id, mask_phone
from portal.verification.service import CodeProof

router = Router(prefix="/api/v1", tags=["accounts"])


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
    if body.privacy_consent:
        privacy.record_consent(account)
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
def api_me(account: ApiAccount, session: DbSession) -> dict:
    """Who the caller is, how that was proven, and the subjects it may act for."""
    return {
        "account_id": account.id,
        "kind": account.kind,
        "name": account.name,
        "id_number": mask_id(account.id_number),
        "phone": mask_phone(account.phone),
        "verified": account.verified,
        # Itself, then every enterprise that authorised it (委托授权) and still does.
        "subjects": [
            {
                "kind": subject.kind,
                "name": subject.name,
                "id_number": mask_id(subject.id_number),
                "authorisation_id": auth.id if auth else None,
            }
            for subject, auth in authorisations.subjects(session, account=account)
        ],
    }


@router.get(
    "/authorisations",
    response_model=AuthorisationListOut,
    responses={401: {"description": "未登录"}},
)
def api_authorisations(account: ApiAccount, session: DbSession) -> dict:
    """Those a legal person granted, or those a person holds as agent (经办人)."""
    return {"authorisations": authorisations.listed(session, account=account)}


@router.post(
    "/authorisations",
    status_code=201,
    response_model=AuthorisationOut,
    responses={
        401: {"description": "未登录"},
        403: {"description": "只有 2 级及以上核验的法人账户才能授权"},
        404: {"description": "没有使用该手机号码的个人账户"},
        422: {"description": "内容有误"},
    },
)
def api_grant(body: AuthorisationIn, account: ApiAccount, session: DbSession) -> dict:
    """A legal person authorises an agent: for all items or a list of codes, until a date."""
    auth = authorisations.grant(
        session,
        enterprise=account,
        agent_phone=body.agent_phone,
        items=body.items,
        valid_to=body.valid_to,
    )
    return authorisations.views(session, [auth])[0]


@router.delete(
    "/authorisations/{authorisation_id}",
    status_code=204,
    responses={401: {"description": "未登录"}, 404: {"description": "没有该授权"}},
)
def api_revoke(authorisation_id: RowId, account: ApiAccount, session: DbSession) -> Response:
    """Revoke at once: the agent's drafts for the enterprise stay but cannot be submitted."""
    authorisations.revoke(session, enterprise=account, authorisation_id=authorisation_id)
    return Response(status_code=204)
