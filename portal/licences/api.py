"""我的证照, JSON: the caller's licences and registering one issued before the portal."""

from __future__ import annotations

from fastapi import APIRouter

from portal.api import ApiAccount, described
from portal.db import DbSession
from portal.licences import service
from portal.licences.schemas import LicenceIn, LicenceListOut, LicenceOut

router = APIRouter(prefix="/api/v1", tags=["licences"])
R401 = described(401, "未登录")


@router.get("/licences", response_model=LicenceListOut, responses=R401)
def api_licences(session: DbSession, account: ApiAccount) -> dict:
    """Every licence the caller holds, with its status today."""
    return {
        "licences": [
            service.licence_view(session, lic) for lic in service.list_own(session, account=account)
        ]
    }


@router.post(
    "/licences",
    status_code=201,
    response_model=LicenceOut,
    responses=R401
    | {409: {"description": "该证照已由其他账户登记"}, 422: {"description": "证照信息有误"}},
)
def api_register(body: LicenceIn, session: DbSession, account: ApiAccount) -> dict:
    """Register a licence issued before the portal existed, as held by the caller."""
    licence = service.register_licence(
        session,
        account=account,
        number=body.number,
        item_code=body.item_code,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
    )
    return service.licence_view(session, licence)
