"""我的证照, JSON: the caller's licences and registering one issued before the portal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from portal.api import ApiAccount, described
from portal.cases.schemas import CaseOut
from portal.cases.view import case_view
from portal.db import DbSession
from portal.licences import kinds, service
from portal.licences.schemas import ApplicationIn, LicenceIn, LicenceListOut, LicenceOut
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["licences"])
R401 = described(401, "未登录")


@router.get(
    "/licences",
    response_model=LicenceListOut,
    responses=R401 | described(403, "not_authorised：没有代该单位办理的有效授权"),
)
def api_licences(
    session: DbSession,
    account: ApiAccount,
    on_behalf_of: Annotated[str | None, Query(max_length=18)] = None,
) -> dict:
    """Every licence the caller holds, with its status today; with `on_behalf_of`, the
    licences of that enterprise whose items the caller's authorisations cover."""
    if on_behalf_of:
        enterprise = service.acting_for(session, agent=account, uscc=on_behalf_of)
        held = dict((e.id, lics) for e, lics in service.agent_licences(session, agent=account))[
            enterprise.id
        ]
    else:
        held = service.list_own(session, account=account)
    return {"licences": [service.licence_view(session, lic) for lic in held]}


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


@router.post(
    "/licences/{number}/applications",
    status_code=201,
    response_model=CaseOut,
    responses=R401
    | {200: {"description": "该证照已有同类申请的草稿：返回该草稿", "model": CaseOut}}
    | described(403, "not_authorised：on_behalf_of 的单位没有授权当前账户办理该证照的事项")
    | described(404, "没有找到该证照（或不属于当前账户）")
    | described(409, "application_not_open：现在不能申请（如不在延续申请期），message 说明原因")
    | described(422, "申请类型有误"),
)
def api_apply(
    number: str,
    response: Response,
    session: DbSession,
    account: ApiAccount,
    # Optional so that a number not the caller's answers 404 before the body is judged.
    body: ApplicationIn | None = None,
) -> dict:
    """A draft case of `kind` about the caller's licence, its form filled from the licence
    and the case it was issued on."""
    case, created = service.start_application(
        session,
        account=account,
        number=number,
        kind=body.kind if body else "",
        on_behalf_of=body.on_behalf_of if body else None,
    )
    if not created:
        response.status_code = 200
    return case_view(session, case=case, item=kinds.item_for_case(session, case))
