"""Public status lookup in the JSON API: no token, nothing personal in the answer."""

from __future__ import annotations

from fastapi import Query, Request

from portal.db import DbSession
from portal.routing import Router
from portal.status import service
from portal.status.schemas import PublicStatusOut

router = Router(prefix="/api/v1", tags=["status"])


@router.get(
    "/status",
    response_model=PublicStatusOut,
    responses={
        404: {"description": "没有相符的办件（编号不存在与手机号后四位不符，答复相同）"},
        422: {"description": "缺少办件编号或手机号后 4 位"},
        429: {"description": "查询失败次数过多（按地址和按办件编号计），见 Retry-After"},
    },
)
def api_status(
    request: Request,
    session: DbSession,
    case_no: str = Query(default="", max_length=40),
    phone_last4: str = Query(default="", max_length=10),
) -> dict:
    """Status, due date and timeline of a case, for its number and the phone's last 4 digits."""
    case = service.find_case(
        session,
        db=request.app.state.db,
        case_no=case_no,
        phone_last4=phone_last4,
        client_ip=request.client.host if request.client else "unknown",
    )
    return service.public_view(session, case=case)
