"""Cases JSON API: the same service functions as the pages."""

from __future__ import annotations

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from portal.accounts.filing import Filing
from portal.api import ApiAccount, described
from portal.cases import service, view
from portal.cases.downloads import document_response, licence_response
from portal.cases.schemas import (
    CaseCreateIn,
    CaseListOut,
    CaseOut,
    CasePatchIn,
    FileOut,
    SubmissionIn,
    WithdrawalIn,
)
from portal.cases.uploads import upload_to_case
from portal.db import DbSession, RowId
from portal.materials import service as materials
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["cases"])

R401 = described(401, "未登录")
R404 = described(404, "没有该办件（或不属于当前账户）")
# identity.md: pre-review needs a proven phone, formal submission level ≥ 2.
R403V = described(403, "verification_required：须先验证手机号码或核验身份，message 说明如何核验")
R409 = described(409, "当前状态不允许此操作")
R422 = described(422, "内容有误")


def _view(session, case) -> dict:
    item = service.item_of(session, case)  # as its application kind (延续…) files it
    return view.case_view(session, case=case, item=item)


R403A = described(403, "not_authorised：没有代该单位办理该事项的有效授权")


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseOut,
    responses=R401 | R403A | R404 | R409 | R422,
)
def api_create_case(body: CaseCreateIn, session: DbSession, account: ApiAccount) -> dict:
    """Create a draft for an item; `form` may be partial; `on_behalf_of` files it for an
    enterprise that authorised the caller (委托授权)."""
    case = service.create_case(
        session,
        account=account,
        item_code=body.item_code,
        form=body.form,
        on_behalf_of=body.on_behalf_of,
    )
    return _view(session, case)


@router.get("/cases", response_model=CaseListOut, responses=R401)
def api_list_cases(session: DbSession, account: ApiAccount) -> dict:
    """The caller's own cases, newest first."""
    return {"cases": [_view(session, c) for c in service.list_own_cases(session, account=account)]}


@router.get("/cases/{case_no}", response_model=CaseOut, responses=R401 | R404)
def api_get_case(case_no: str, session: DbSession, account: ApiAccount) -> dict:
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _view(session, case)


@router.patch("/cases/{case_no}", response_model=CaseOut, responses=R401 | R404 | R409 | R422)
def api_patch_case(
    case_no: str, body: CasePatchIn, session: DbSession, account: ApiAccount
) -> dict:
    """Merge form values into a draft (or a returned case)."""
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = service.item_of(session, case)
    service.save_form(session, case=case, item=item, form=body.form)
    return _view(session, case)


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


async def _upload(request, session, account, case_no, material_code, *, check, attach) -> dict:
    case = await run_in_threadpool(service.get_own_case, session, account=account, case_no=case_no)
    item = await run_in_threadpool(service.item_of, session, case)
    await run_in_threadpool(check, session, case=case, item=item, material_code=material_code)
    case_file = await upload_to_case(
        request,
        session,
        account=account,
        case=case,
        item=item,
        material_code=material_code,
        attach=attach,
    )
    return {
        "id": case_file.id,
        "filename": case_file.filename,
        "content_type": case_file.content_type,
        "size": case_file.size,
        "sha256": case_file.sha256,
    }


@router.post(
    "/cases/{case_no}/materials/{material_code}/files",
    status_code=201,
    response_model=FileOut,
    openapi_extra=UPLOAD_BODY,
    responses=R401
    | R404
    | R409
    | {
        400: {"description": "不是有效的 multipart 上传"},
        413: {"description": "文件太大"},
        415: {"description": "不是 PDF、JPEG 或 PNG"},
    },
)
async def api_upload(
    request: Request, case_no: str, material_code: str, session: DbSession, account: ApiAccount
) -> dict:
    """Upload one file (multipart field `file`), streamed and checked by content."""
    return await _upload(
        request,
        session,
        account,
        case_no,
        material_code,
        check=materials.check_can_upload,
        attach=materials.attach_file,
    )


@router.delete(
    "/cases/{case_no}/materials/{material_code}/files/{file_id}",
    status_code=204,
    response_class=Response,
    responses=R401 | R404 | R409,
)
def api_delete_file(
    case_no: str, material_code: str, file_id: RowId, session: DbSession, account: ApiAccount
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    materials.remove_file(session, case=case, file_id=file_id, material_code=material_code)
    return Response(status_code=204)


@router.post(
    "/cases/{case_no}/prereview",
    status_code=202,
    response_model=CaseOut,
    responses=R401 | R403V | R404 | R409 | R422,
)
def api_prereview(case_no: str, session: DbSession, account: ApiAccount, rule: Filing) -> dict:
    """Submit for 网上预审 (again after a return)."""
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    service.submit_for_prereview(session, case=case, account=account, rule=rule)
    return _view(session, case)


@router.post(
    "/cases/{case_no}/submission",
    status_code=202,
    response_model=CaseOut,
    responses=R401 | R403V | R404 | R409 | R422,
)
def api_submission(
    case_no: str,
    session: DbSession,
    account: ApiAccount,
    rule: Filing,
    body: SubmissionIn | None = None,
) -> dict:
    """Formal 不见面 submission; deferrable materials may be missing under a commitment (容缺)."""
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    commitment = body.commitment if body else None
    service.submit_formally(
        session,
        case=case,
        account=account,
        rule=rule,
        deferred=commitment.deferred_materials if commitment else [],
        accepted=commitment.accepted if commitment else False,
        kind=commitment.kind if commitment else "rongque",
    )
    return _view(session, case)


@router.post(
    "/cases/{case_no}/materials/{material_code}/supplement-files",
    status_code=201,
    response_model=FileOut,
    openapi_extra=UPLOAD_BODY,
    responses=R401
    | R404
    | R409
    | {413: {"description": "文件太大"}, 415: {"description": "类型不支持"}},
)
async def api_supplement_upload(
    request: Request, case_no: str, material_code: str, session: DbSession, account: ApiAccount
) -> dict:
    """补交: a file for a material deferred under 容缺受理; it leaves with `/supplement`."""
    return await _upload(
        request,
        session,
        account,
        case_no,
        material_code,
        check=service.check_can_supplement,
        attach=service.attach_supplement_file,
    )


@router.post(
    "/cases/{case_no}/supplement",
    status_code=202,
    response_model=CaseOut,
    responses=R401 | R404 | R409 | R422,
)
def api_supplement(case_no: str, session: DbSession, account: ApiAccount) -> dict:
    """Hand in the deferred materials uploaded so far (event `materials.supplemented`)."""
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    service.supplement_materials(session, case=case, account=account)
    return _view(session, case)


@router.post(
    "/cases/{case_no}/correction",
    status_code=202,
    response_model=CaseOut,
    responses=R401 | R404 | R409 | R422,
)
def api_correction(case_no: str, session: DbSession, account: ApiAccount) -> dict:
    """Hand in the corrections of a correction_required case (event `case.corrected`)."""
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    service.submit_correction(session, case=case, account=account)
    return _view(session, case)


@router.get(
    "/cases/{case_no}/licence",
    response_class=Response,
    responses=R401
    | R404
    | {
        200: {
            "description": "the electronic licence, byte for byte as issued",
            "content": {"application/pdf": {}},
        }
    },
)
def api_licence(
    case_no: str, request: Request, session: DbSession, account: ApiAccount
) -> Response:
    """The licence file the bureau issued, once approved and fetched."""
    case = service.get_own_case(session, account=account, case_no=case_no)
    return licence_response(request.app.state.store, case)


@router.get(
    "/cases/{case_no}/documents/{document_no}",
    response_class=Response,
    responses=R401
    | R404
    | {
        200: {
            "description": "the document, byte for byte as issued",
            "content": {"application/pdf": {}},
        }
    },
)
def api_document(
    case_no: str, document_no: str, request: Request, session: DbSession, account: ApiAccount
) -> Response:
    """A document (文书) the bureau issued, once fetched."""
    case = service.get_own_case(session, account=account, case_no=case_no)
    return document_response(request.app.state.store, case, document_no)


@router.post(
    "/cases/{case_no}/withdrawal", response_model=CaseOut, responses=R401 | R404 | R409 | R422
)
def api_withdrawal(
    case_no: str, session: DbSession, account: ApiAccount, body: WithdrawalIn | None = None
) -> dict:
    """Withdraw a case that is not yet accepted (or delete a draft)."""
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    service.withdraw_case(session, case=case, reason=body.reason if body else "")
    return _view(session, case)
