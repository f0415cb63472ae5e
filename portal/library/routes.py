"""Library pages: my documents, their validity, deleting, and picking one for a case."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import StreamingResponse

from portal.cases import service as cases
from portal.db import DbSession
from portal.errors import Invalid, NotFound
from portal.library import service
from portal.routing import Router
from portal.web import CsrfForm, LoggedIn, flash, redirect, render, stored_file_headers

router = Router(include_in_schema=False)


def _id(raw: str) -> int:
    # Same answer as a missing document, so probing ids reveals nothing.
    if not raw.isdigit() or not 0 < int(raw) < 2**31:
        raise NotFound(service.NOT_FOUND_MESSAGE, code="document_not_found")
    return int(raw)


def _page(request: Request, session, account, **extra):
    status_code = extra.pop("status_code", 200)
    documents = service.list_documents(session, account=account)
    rows = [{"doc": d, "expired": service.is_expired(d)} for d in documents]
    return render(request, "library/library.html", {"rows": rows, **extra}, status_code=status_code)


@router.get("/library")
def library_page(request: Request, session: DbSession, account: LoggedIn):
    return _page(request, session, account)


@router.get("/library/{document_id}/file")
def document_file(request: Request, document_id: str, session: DbSession, account: LoggedIn):
    document = service.get_own_document(session, account=account, document_id=_id(document_id))
    return StreamingResponse(
        request.app.state.store.chunks(document.sha256),
        media_type=document.content_type,
        headers=stored_file_headers(document.content_type, document.filename, document.size),
    )


@router.post("/library/{document_id}/validity")
def set_validity(
    request: Request, document_id: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    number = _id(document_id)
    raw = form.get("valid_to")
    try:
        service.set_valid_to(
            session,
            account=account,
            document_id=number,
            valid_to=raw if isinstance(raw, str) else "",
        )
    except Invalid as exc:
        session.rollback()
        return _page(
            request,
            session,
            account,
            errors={f"valid_to-{number}": exc.fields.get("valid_to", exc.message)},
            values={f"valid_to-{number}": raw if isinstance(raw, str) else ""},
            status_code=422,
        )
    flash(request, "有效期已保存。过期的材料不会再被推荐使用。")
    return redirect(f"/library#d-{number}")


@router.post("/library/{document_id}/delete")
def delete_document(
    request: Request, document_id: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    service.delete_document(session, account=account, document_id=_id(document_id))
    flash(request, "已从材料库删除。已经提交的办件不受影响。")
    return redirect("/library")


@router.post("/cases/{case_no}/materials/{material_code}/library")
def attach_to_case(
    request: Request,
    case_no: str,
    material_code: str,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
):
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = cases.item_of(session, case)  # a renewal's materials are its own
    raw = form.get("document_id")
    number = int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 10 else 0
    case_file = service.attach_to_case(
        session,
        account=account,
        case=case,
        item=item,
        material_code=material_code,
        document_id=number,
    )
    flash(request, f"已从材料库选用“{case_file.filename}”，无需重新上传。")
    return redirect(f"/cases/{case.case_no}#m-{material_code}")
