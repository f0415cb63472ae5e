"""One uploaded file for one material of a case: the same path for the pages and the API,
for a draft's materials and for 补交 (materials deferred under 容缺受理)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from portal.accounts.models import Account
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.library import service as library
from portal.materials.models import CaseFile
from portal.materials.upload import receive_file


async def upload_to_case(
    request: Request,
    session: Session,
    *,
    account: Account,
    case: Case,
    item: Item,
    material_code: str,
    attach: Callable[..., CaseFile],
    csrf_check: Callable[[str | None], bool] | None = None,
) -> CaseFile:
    """Stream the file in (outside any transaction), `attach` it, keep it in the library.

    The caller has checked, before any byte is read, that the material may take a file;
    `attach` (materials.attach_file, cases.service.attach_supplement_file) checks again
    under the write lock, since the upload may have taken minutes.
    """
    store = request.app.state.store
    received = await receive_file(
        request,
        store,
        session=session,
        max_bytes=request.app.state.settings.max_upload_bytes,
        csrf_check=csrf_check,
    )

    def attach_and_keep() -> CaseFile:
        case_file = attach(
            session,
            case=case,
            item=item,
            material_code=material_code,
            received=received,
            store=store,
        )
        library.keep_upload(
            session,
            account_id=account.id,
            case_no=case.case_no,
            material=item.material(material_code),
            case_file=case_file,
        )
        return case_file

    try:
        return await run_in_threadpool(attach_and_keep)
    finally:
        received.writer.discard()  # no-op once kept
