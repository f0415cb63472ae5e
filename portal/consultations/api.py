"""12345 JSON API."""

from __future__ import annotations

from fastapi import Request

from portal.accounts.models import Account
from portal.accounts.service import account_for_token
from portal.api import ApiAccount, bearer_token, described
from portal.cases.models import Case
from portal.consultations import limits, service
from portal.consultations.schemas import (
    ConsultationIn,
    ConsultationListOut,
    ConsultationLookupIn,
    ConsultationOut,
)
from portal.db import DbSession
from portal.routing import Router
from portal.verification.api import client_address

router = Router(prefix="/api/v1", tags=["12345"])
R401 = described(401, "未登录")
R404 = described(404, "没有该咨询投诉（或不属于当前账户）")


def _view(session, consultation) -> dict:
    case = session.get(Case, consultation.case_id) if consultation.case_id else None
    return service.consultation_view(consultation, case.case_no if case else None)


@router.post(
    "/consultations",
    status_code=201,
    response_model=ConsultationOut,
    responses=R401
    | {422: {"description": "内容有误或验证码不正确"}, 429: {"description": "提交过于频繁"}},
)
def api_submit(body: ConsultationIn, request: Request, session: DbSession) -> dict:
    """Ask a question or complain (about one of the caller's cases or none); without a
    bearer token, with `contact` and the `consultation` SMS `code` of its phone."""
    fields = {
        "kind": body.kind,
        "subject": body.subject,
        "body": body.body,
        "case_no": body.case_no,
        "contact_name": body.contact.name if body.contact else "",
        "contact_phone": body.contact.phone if body.contact else "",
    }
    account = _caller(request, session)
    if account is None:
        consultation = service.submit_without_account(
            session,
            db=request.app.state.db,
            settings=request.app.state.settings,
            client_ip=client_address(request),
            code=body.code,
            **fields,
        )
    else:
        limits.take_submission(session, account=account, client_ip=client_address(request))
        consultation = service.submit_consultation(session, account=account, **fields)
    return _view(session, consultation)


def _caller(request: Request, session) -> Account | None:
    """The bearer token's account; None without an Authorization header (a wrong or
    expired token is still 401, never silently a question without an account)."""
    if "authorization" not in request.headers:
        return None
    account = account_for_token(session, request.app.state.settings, bearer_token(request))
    request.state.account = account
    return account


@router.post(
    "/consultation-lookups",
    response_model=ConsultationOut,
    responses=described(404, "没有与该手机号码和编号相符的咨询投诉")
    | {422: {"description": "手机号码、编号或验证码有误"}},
)
def api_lookup(body: ConsultationLookupIn, request: Request, session: DbSession) -> dict:
    """A consultation sent without an account: its phone, reference and a new SMS code."""
    found = service.find_by_reference(
        session,
        db=request.app.state.db,
        settings=request.app.state.settings,
        phone=body.phone,
        reference=body.reference,
        code=body.code,
    )
    return _view(session, found)


@router.get("/consultations", response_model=ConsultationListOut, responses=R401)
def api_list(session: DbSession, account: ApiAccount) -> dict:
    found = service.list_own(session, account=account)
    return {"consultations": [_view(session, c) for c in found]}


@router.get(
    "/consultations/{consultation_id}", response_model=ConsultationOut, responses=R401 | R404
)
def api_get(consultation_id: str, session: DbSession, account: ApiAccount) -> dict:
    return _view(
        session, service.get_own(session, account=account, consultation_id=consultation_id)
    )
