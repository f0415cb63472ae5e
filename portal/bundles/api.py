"""Bundles JSON API: the same service functions as the pages."""

from __future__ import annotations

from fastapi import Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from portal.accounts.filing import Filing
from portal.api import ApiAccount, described
from portal.bundles import service
from portal.bundles.schemas import (
    ApplicationListOut,
    ApplicationOut,
    BundleFormIn,
    BundleListOut,
    BundleOut,
    BundleStartIn,
    BundleSubmissionIn,
    GroupUploadOut,
    LibraryPickIn,
)
from portal.cases.api import R403V, UPLOAD_BODY
from portal.cases.models import Case
from portal.db import DbSession, RowId
from portal.materials.upload import receive_file
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["bundles"])
# Ids are 32-bit integers in the database; larger numbers are refused as invalid, not a 500.
AppId = RowId

R401 = described(401, "未登录")
R404 = described(404, "没有该一件事（或申请不属于当前账户）")
R409 = described(409, "当前状态不允许此操作")
R422 = described(422, "内容有误")


@router.get("/bundles", response_model=BundleListOut)
def api_list_bundles(session: DbSession) -> dict:
    """Every 一件事 with its savings against applying item by item."""
    return {"bundles": [service.bundle_summary(session, b) for b in service.list_bundles(session)]}


@router.get("/bundles/{code}", response_model=BundleOut, responses=R404)
def api_get_bundle(code: str, session: DbSession) -> dict:
    return service.bundle_summary(session, service.get_bundle(session, code=code))


def _view(session, application) -> dict:
    return service.application_view(session, application=application)


@router.post(
    "/bundles/{code}/cases",
    status_code=201,
    response_model=ApplicationOut,
    responses=R401 | R404 | R409 | R422,
)
def api_start(
    code: str, session: DbSession, account: ApiAccount, body: BundleStartIn | None = None
) -> dict:
    """Create the linked drafts (one per item) of a bundle application; `form` may be partial."""
    application = service.start_application(
        session, account=account, code=code, form=body.form if body else {}
    )
    return _view(session, application)


@router.get("/bundle-applications", response_model=ApplicationListOut, responses=R401)
def api_list_applications(session: DbSession, account: ApiAccount) -> dict:
    found = service.list_own_applications(session, account=account)
    return {"applications": [_view(session, a) for a in found]}


@router.get(
    "/bundle-applications/{application_id}", response_model=ApplicationOut, responses=R401 | R404
)
def api_get_application(application_id: AppId, session: DbSession, account: ApiAccount) -> dict:
    application = service.get_own_application(
        session, account=account, application_id=application_id
    )
    return _view(session, application)


@router.patch(
    "/bundle-applications/{application_id}",
    response_model=ApplicationOut,
    responses=R401 | R404 | R409 | R422,
)
def api_patch_application(
    application_id: AppId, body: BundleFormIn, session: DbSession, account: ApiAccount
) -> dict:
    """Merge shared answers; each is written into every case that asks for it."""
    application = service.get_own_application(
        session, account=account, application_id=application_id, for_update=True
    )
    service.save_shared_form(session, application=application, form=body.form)
    return _view(session, application)


@router.post(
    "/bundle-applications/{application_id}/materials/{kind}/files",
    status_code=201,
    response_model=GroupUploadOut,
    openapi_extra=UPLOAD_BODY,
    responses=R401
    | R404
    | R409
    | {413: {"description": "文件太大"}, 415: {"description": "类型不支持"}},
)
async def api_upload(
    request: Request, application_id: AppId, kind: str, session: DbSession, account: ApiAccount
) -> dict:
    """Upload once (multipart field `file`); attached to every item that asks for `kind`."""
    application = await run_in_threadpool(
        service.get_own_application, session, account=account, application_id=application_id
    )
    await run_in_threadpool(
        service.check_can_upload_kind, session, application=application, kind=kind
    )
    store = request.app.state.store
    received = await receive_file(
        request, store, session=session, max_bytes=request.app.state.settings.max_upload_bytes
    )
    try:
        attached = await run_in_threadpool(
            service.upload_once,
            session,
            application=application,
            account=account,
            kind=kind,
            received=received,
            store=store,
        )
    finally:
        received.writer.discard()
    return _group_upload(session, attached)


def _group_upload(session, attached) -> dict:
    first = attached[0]
    numbers = dict(
        session.execute(
            select(Case.id, Case.case_no).where(Case.id.in_([f.case_id for f in attached]))
        ).all()
    )
    return {
        "sha256": first.sha256,
        "filename": first.filename,
        "content_type": first.content_type,
        "size": first.size,
        "cases": [numbers[f.case_id] for f in attached],
    }


@router.post(
    "/bundle-applications/{application_id}/materials/{kind}/library-files",
    status_code=201,
    response_model=GroupUploadOut,
    responses=R401 | R404 | R409 | R422,
)
def api_attach_library(
    application_id: AppId, kind: str, body: LibraryPickIn, session: DbSession, account: ApiAccount
) -> dict:
    """Use a document of the caller's library for `kind`: no upload, the file is referenced."""
    application = service.get_own_application(
        session, account=account, application_id=application_id, for_update=True
    )
    attached = service.attach_from_library(
        session, application=application, account=account, kind=kind, document_id=body.document_id
    )
    return _group_upload(session, attached)


@router.delete(
    "/bundle-applications/{application_id}/materials/{kind}/files/{sha256}",
    status_code=204,
    response_class=Response,
    responses=R401 | R404 | R409,
)
def api_remove_file(
    application_id: AppId, kind: str, sha256: str, session: DbSession, account: ApiAccount
):
    application = service.get_own_application(
        session, account=account, application_id=application_id, for_update=True
    )
    service.remove_file(session, application=application, kind=kind, sha256=sha256)
    return Response(status_code=204)


@router.post(
    "/bundle-applications/{application_id}/submission",
    status_code=202,
    response_model=ApplicationOut,
    responses=R401 | R403V | R404 | R409 | R422,
)
def api_submit(
    application_id: AppId,
    session: DbSession,
    account: ApiAccount,
    rule: Filing,
    body: BundleSubmissionIn | None = None,
) -> dict:
    """The one submission: drafts go to 网上预审 (or straight in), passed ones go formal."""
    application = service.get_own_application(
        session, account=account, application_id=application_id, for_update=True
    )
    commitment = body.commitment if body else None
    gaozhi = body.gaozhi if body else None
    service.submit_application(
        session,
        application=application,
        account=account,
        rule=rule,
        deferred_kinds=commitment.deferred_materials if commitment else [],
        accepted=commitment.accepted if commitment else False,
        gaozhi_items=gaozhi.items if gaozhi else [],
        gaozhi_accepted=gaozhi.accepted if gaozhi else False,
    )
    return _view(session, application)
