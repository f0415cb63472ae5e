"""材料寄递 through the JSON API: how the originals reach the bureau."""

from __future__ import annotations

from typing import Any

from portal.api import ApiAccount
from portal.cases import service as cases
from portal.cases.schemas import CaseOut
from portal.cases.view import case_view
from portal.catalogue.service import find_item
from portal.db import DbSession
from portal.originals import service
from portal.originals.schemas import OriginalsIn
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["originals"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "未登录"},
    404: {"description": "没有该办件（或不属于当前账户）"},
    409: {"description": "事项不需要原件，办件尚未正式提交，或审批局已签收"},
    422: {"description": "快递公司、单号、取件地址或大厅有误"},
}


@router.post("/cases/{case_no}/originals", response_model=CaseOut, responses=RESPONSES)
def api_post_originals(
    case_no: str, body: OriginalsIn, session: DbSession, account: ApiAccount
) -> dict:
    """Post the originals (carrier and waybill number) or bring them; may change until received."""
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = find_item(session, case.item_code)
    assert item is not None
    service.post_originals(
        session,
        case=case,
        item=item,
        method=body.method,
        carrier=body.carrier,
        tracking_no=body.tracking_no,
        hall=body.hall,
        address=body.address.model_dump() if body.address else None,
    )
    return case_view(session, case=case, item=item)
