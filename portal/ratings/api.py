"""好差评 JSON API."""

from __future__ import annotations

from portal.api import ApiAccount, Responses
from portal.cases import service as cases
from portal.cases.schemas import CaseOut
from portal.cases.view import case_view
from portal.db import DbSession
from portal.ratings import service
from portal.ratings.schemas import RatingIn
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["ratings"])
RESPONSES: Responses = {
    401: {"description": "未登录"},
    404: {"description": "没有该办件（或不属于当前账户）"},
    409: {"description": "办件尚未办结，或已经评价过"},
    422: {"description": "满意程度无效，或不满意时缺少意见"},
}


@router.post(
    "/cases/{case_no}/rating", status_code=201, response_model=CaseOut, responses=RESPONSES
)
def api_rate(case_no: str, body: RatingIn, session: DbSession, account: ApiAccount) -> dict:
    """Rate a finished case once (好差评); the bureau receives `rating.submitted`."""
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    service.rate_case(session, case=case, level=body.level, comment=body.comment, tags=body.tags)
    item = cases.item_of(session, case)  # as its kind files it, like every case answer
    return case_view(session, case=case, item=item)
