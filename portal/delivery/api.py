"""Delivery JSON API: the choice of 证照快递 / 窗口领取, and the GB/T 2260 divisions."""

from __future__ import annotations

from fastapi import Response
from sqlalchemy.orm import Session

from portal.api import ApiAccount, described
from portal.cases import service as cases
from portal.cases.schemas import CaseOut
from portal.cases.view import case_view
from portal.catalogue.service import find_item
from portal.db import DbSession
from portal.delivery import service
from portal.delivery.divisions import tree
from portal.delivery.schemas import AddressBookOut, DeliveryIn, DivisionListOut
from portal.errors import NotFound
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["delivery"])
R401 = described(401, "未登录")
R404 = described(404, "没有该办件（或不属于当前账户）")
R409 = described(409, "事项不提供快递，或证照已寄出、已通知领取")
R422 = described(422, "地址或大厅有误")
# The divisions change once a year at most; phones may keep them for a day.
CACHE = {"Cache-Control": "public, max-age=86400"}


@router.put(
    "/cases/{case_no}/delivery", response_model=CaseOut, responses=R401 | R404 | R409 | R422
)
def api_choose_delivery(
    case_no: str, body: DeliveryIn, session: DbSession, account: ApiAccount
) -> dict:
    """Choose express post (`address`) or pickup at a hall (`hall`); may change until shipped."""
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = find_item(session, case.item_code)
    assert item is not None
    service.choose_delivery(
        session,
        case=case,
        item=item,
        method=body.method,
        hall=body.hall,
        address=body.address.model_dump() if body.address else None,
    )
    return case_view(session, case=case, item=item)


@router.get("/divisions", response_model=DivisionListOut)
def api_provinces(response: Response) -> dict:
    """Provinces of GB/T 2260 that an express address can name."""
    response.headers.update(CACHE)
    divisions = tree().provinces
    return {"code": None, "name": None, "divisions": [d.__dict__ for d in divisions]}


@router.get(
    "/divisions/{code}",
    response_model=DivisionListOut,
    responses={404: {"description": "没有这个行政区划代码"}},
)
def api_divisions(code: str, response: Response) -> dict:
    """The cities of a province, or the districts of a city."""
    divisions = tree()
    parent = divisions.get(code)
    children = divisions.children(code) if parent else []
    if parent is None or not children:
        raise NotFound("没有这个行政区划代码。", code="division_not_found")
    response.headers.update(CACHE)
    return {"code": parent.code, "name": parent.name, "divisions": [d.__dict__ for d in children]}


def _book(session: Session, account) -> dict:
    return {
        "addresses": [
            {
                "id": a.id,
                "recipient": a.recipient,
                "phone": a.phone,
                "province": a.province,
                "city": a.city,
                "district": a.district,
                "detail": a.detail,
                "postcode": a.postcode,
                "last_used_at": a.last_used_at,
            }
            for a in service.address_book(session, account=account)
        ]
    }


@router.get("/addresses", response_model=AddressBookOut, responses=R401)
def api_address_book(session: DbSession, account: ApiAccount) -> dict:
    """常用地址: the express and pickup addresses this account used, newest first."""
    return _book(session, account)


@router.delete(
    "/addresses/{address_id}",
    response_model=AddressBookOut,
    responses=R401 | {404: {"description": "没有该常用地址（或不属于当前账户）"}},
)
def api_delete_address(address_id: str, session: DbSession, account: ApiAccount) -> dict:
    """Remove one address from the book; cases that used it keep their copy. Answers the rest."""
    service.delete_address(session, account=account, address_id=address_id)
    session.flush()
    return _book(session, account)
