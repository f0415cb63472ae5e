"""12345 JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request

from portal.api import ApiAccount, described
from portal.cases.models import Case
from portal.consultations import limits, service
from portal.consultations.schemas import ConsultationIn, ConsultationListOut, ConsultationOut
from portal.db import DbSession

router = APIRouter(prefix="/api/v1", tags=["12345"])
R401 = described(401, "未登录")
R404 = described(404, "没有该咨询投诉（或不属于当前账户）")


def _view(session, consultation) -> dict:
    case = session.get(Case, consultation.case_id) if consultation.case_id else None
    return service.consultation_view(consultation, case.case_no if case else None)


@router.post(
    "/consultations",
    status_code=201,
    response_model=ConsultationOut,
    responses=R401 | {422: {"description": "内容有误"}, 429: {"description": "提交过于频繁"}},
)
def api_submit(
    body: ConsultationIn, request: Request, session: DbSession, account: ApiAccount
) -> dict:
    """Ask a question or complain (about one of the caller's cases or none)."""
    limits.take_submission(
        session, account=account, client_ip=request.client.host if request.client else "-"
    )
    consultation = service.submit_consultation(
        session,
        account=account,
        kind=body.kind,
        subject=body.subject,
        body=body.body,
        case_no=body.case_no,
        contact_name=body.contact.name if body.contact else "",
        contact_phone=body.contact.phone if body.contact else "",
    )
    return _view(session, consultation)


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
