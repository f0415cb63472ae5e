"""Library JSON API: list, attach to a case's material without uploading, delete."""

from __future__ import annotations

from fastapi import Response

from portal.api import ApiAccount, described
from portal.cases import service as cases
from portal.cases.schemas import FileOut
from portal.db import DbSession, RowId
from portal.library import service
from portal.library.schemas import DocumentListOut, DocumentOut, PickIn, ValidityIn
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["library"])
DocId = RowId
R401 = described(401, "未登录")
R404 = described(404, "没有该材料（或不属于当前账户）")


@router.get("/library", response_model=DocumentListOut, responses=R401)
def api_library(session: DbSession, account: ApiAccount, kind: str = "") -> dict:
    """The caller's 材料库; with `kind`, only the documents that can be used for it now."""
    if kind:
        found = service.offers_for(session, account=account, kind=kind[:64])
    else:
        found = service.list_documents(session, account=account)
    return {"documents": [service.document_view(d) for d in found]}


@router.patch(
    "/library/{document_id}",
    response_model=DocumentOut,
    responses=R401 | R404 | {409: {"description": "证照的有效期不能修改"}},
)
def api_set_validity(
    document_id: DocId, body: ValidityIn, session: DbSession, account: ApiAccount
) -> dict:
    """Record until when an uploaded document is valid; expired ones are no longer offered."""
    document = service.set_valid_to(
        session, account=account, document_id=document_id, valid_to=body.valid_to
    )
    return service.document_view(document)


@router.delete(
    "/library/{document_id}", status_code=204, response_class=Response, responses=R401 | R404
)
def api_delete(document_id: DocId, session: DbSession, account: ApiAccount):
    """Forget a document; cases already using it keep their own copy."""
    service.delete_document(session, account=account, document_id=document_id)
    return Response(status_code=204)


@router.post(
    "/cases/{case_no}/materials/{material_code}/library-files",
    status_code=201,
    response_model=FileOut,
    responses=R401
    | R404
    | {409: {"description": "办件不可修改"}, 422: {"description": "类型不符或已过期"}},
)
def api_attach(
    case_no: str, material_code: str, body: PickIn, session: DbSession, account: ApiAccount
) -> dict:
    """Use a library document for a material of a draft: no bytes are uploaded again."""
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = cases.item_of(session, case)  # a renewal's materials are its own
    case_file = service.attach_to_case(
        session,
        account=account,
        case=case,
        item=item,
        material_code=material_code,
        document_id=body.document_id,
    )
    return {
        "id": case_file.id,
        "filename": case_file.filename,
        "content_type": case_file.content_type,
        "size": case_file.size,
        "sha256": case_file.sha256,
    }
