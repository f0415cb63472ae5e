"""Case pages: my cases, the draft's form and materials, check your answers, submission."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from portal.accounts.filing import Filing, VerificationRequired, identity_notice
from portal.cases import pages, service, states, uploads
from portal.cases.downloads import document_response, licence_response
from portal.cases.forms import missing_fields
from portal.catalogue.models import Item
from portal.db import DbSession, RowId
from portal.errors import DomainError, Forbidden, Invalid, NotFound
from portal.materials import service as materials
from portal.routing import Router
from portal.web import (
    CsrfForm,
    CurrentAccount,
    LoggedIn,
    csrf_valid,
    flash,
    redirect,
    render,
    stored_file_headers,
)

router = Router(include_in_schema=False)


def _item(session, case) -> Item:
    return service.item_of(session, case)  # as its application kind (延续…) files it


def _page(request: Request, session, case, account, template: str = "cases/case.html", **extra):
    status_code = extra.pop("status_code", 200)
    item = _item(session, case)
    context = pages.case_context(session, case=case, item=item, account=account)
    if template == "cases/review.html":
        step = "prereview" if states.permissions(case, item).prereview else "formal"
        context["identity"] = identity_notice(request, account, step)
    context.update(extra)
    return render(request, template, context, status_code=status_code)


@router.get("/cases")
def my_cases(request: Request, session: DbSession, account: LoggedIn):
    filed = [
        (c, service.item_of(session, c))  # 食品经营许可（延续）for a renewal
        for c in service.list_own_cases(session, account=account)
    ]
    needs = service.still_needed(session, [(c, i) for c, i in filed if c.status == states.DRAFT])
    groups: dict[str, list[dict]] = {"drafts": [], "open": [], "finished": []}
    for c, item in filed:
        group = (
            "drafts"
            if c.status == states.DRAFT
            else "finished"
            if c.status in states.FINISHED
            else "open"
        )
        groups[group].append(
            {
                "case": c,
                "item": item,
                "label": states.STATUS_LABELS[c.status],
                "tag": states.STATUS_TAGS[c.status],
                "needs": needs.get(c.id),
            }
        )
    return render(request, "cases/list.html", {"groups": groups, "any": any(groups.values())})


@router.post("/cases")
def create_case(request: Request, session: DbSession, account: CurrentAccount, form: CsrfForm):
    item_code = str(form.get("item_code") or "")
    if account is None:
        return redirect(f"/login?next={quote('/items/' + item_code)}")
    on_behalf_of = str(form.get("on_behalf_of") or "")[:18] or None
    existing = service.untouched_draft(session, account=account, item_code=item_code[:16])
    if existing is not None and on_behalf_of is None and existing.on_behalf_of_id is None:
        flash(request, f"您已有该事项的空白草稿（办件编号 {existing.case_no}），请直接填写。")
        return redirect(f"/cases/{existing.case_no}/form")
    # A started draft is offered first: a new one only from the page that listed them
    # (its button sends `again`), not from an item page opened before they existed.
    if not form.get("again"):
        drafts = service.open_drafts(session, account=account, item_code=item_code[:16])
        if drafts:
            flash(
                request,
                f"您有 {len(drafts)} 份该事项未提交的草稿，可以继续填写，也可以重新申请一份。",
            )
            return redirect(f"/items/{quote(drafts[0].item_code)}#drafts")
    case = service.create_case(
        session, account=account, item_code=item_code, on_behalf_of=on_behalf_of
    )
    flash(request, f"已创建草稿，办件编号 {case.case_no}。填写的内容会自动保存在草稿中。")
    return redirect(f"/cases/{case.case_no}/form")


@router.get("/cases/{case_no}")
def case_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    uploaded = uploads.take_confirmation(request)
    return _page(request, session, case, account, uploaded=uploaded)


@router.get("/cases/{case_no}/form")
def form_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    service.ensure_editable(case)
    item = _item(session, case)
    # After a 保存 that left required fields empty: what is still missing, in page order.
    saved = request.query_params.get("saved") == "1"
    missing = missing_fields(item.fields, case.form) if saved else {}
    return render(
        request,
        "cases/form.html",
        {"case": case, "item": item, "values": case.form, "saved": saved, "still_missing": missing},
    )


@router.post("/cases/{case_no}/form")
def form_submit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = _item(session, case)
    submitted = {}
    for spec in item.fields:
        key = f"form.{spec['name']}"
        if spec["type"] == "checkbox":
            submitted[spec["name"]] = "true" if form.get(key) else "false"
        else:
            value = form.get(key)
            submitted[spec["name"]] = value if isinstance(value, str) else ""
    try:
        service.save_form(session, case=case, item=item, form=submitted, replace=True)
    except Invalid as exc:  # each message names its field (forms.problem_text)
        return render(
            request,
            "cases/form.html",
            {"case": case, "item": item, "values": submitted, "errors": exc.fields},
            status_code=422,
        )
    if missing_fields(item.fields, case.form):
        return redirect(f"/cases/{case.case_no}/form?saved=1#still-missing")
    flash(request, "申请信息已保存。")
    return redirect(f"/cases/{case.case_no}#materials")


async def _upload(
    request: Request,
    session,
    account,
    case_no: str,
    material_code: str,
    *,
    check,
    attach,
    replacing: int | None = None,
):
    """The page side of one upload: errors next to the material, and the 已上传 line there too.

    Either way the page lands on the material (#m-<code>), with JS (in place) or without.
    """
    case = await run_in_threadpool(service.get_own_case, session, account=account, case_no=case_no)
    item = await run_in_threadpool(_item, session, case)
    await run_in_threadpool(check, session, case=case, item=item, material_code=material_code)
    try:
        uploaded = await uploads.upload_from_page(
            request,
            session,
            account=account,
            case=case,
            item=item,
            material_code=material_code,
            attach=attach,
            csrf_check=lambda token: csrf_valid(request, token),
        )
    except (Forbidden, NotFound):
        raise
    except DomainError as exc:
        # Shown next to the material it concerns, and in the summary at the top.
        return await run_in_threadpool(
            _page,
            request,
            session,
            case,
            account,
            # Keyed like the form it came from: the material, or the file being replaced.
            upload_errors={
                material_code if replacing is None else f"{material_code}-{replacing}": exc.message
            },
            status_code=exc.status,
        )
    uploads.confirm(
        request, material_code=material_code, uploaded=uploaded, replaced=replacing is not None
    )
    return redirect(f"/cases/{case.case_no}#m-{material_code}")


@router.post("/cases/{case_no}/materials/{material_code}/files")
async def upload_file(
    request: Request, case_no: str, material_code: str, session: DbSession, account: LoggedIn
):
    return await _upload(
        request,
        session,
        account,
        case_no,
        material_code,
        check=materials.check_can_upload,
        attach=materials.attach_file,
    )


@router.post("/cases/{case_no}/materials/{material_code}/files/{file_id}/replace")
async def replace_file(
    request: Request,
    case_no: str,
    material_code: str,
    file_id: RowId,
    session: DbSession,
    account: LoggedIn,
):
    """A returned file replaced in one step: the new one is in before the old one goes."""
    check, attach = uploads.replacing(file_id)
    return await _upload(
        request,
        session,
        account,
        case_no,
        material_code,
        check=check,
        attach=attach,
        replacing=file_id,
    )


@router.post("/cases/{case_no}/materials/{material_code}/files/{file_id}/delete")
def delete_file(
    request: Request,
    case_no: str,
    material_code: str,
    file_id: RowId,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    materials.remove_file(session, case=case, file_id=file_id, material_code=material_code)
    flash(request, "已删除该文件。")
    return redirect(f"/cases/{case.case_no}#m-{material_code}")


def _file_response(request: Request, case_file, *, thumb: bool = False) -> Response:
    store = request.app.state.store
    if thumb:
        data = store.read_thumb(case_file.sha256)
        if data is None:
            raise NotFound("没有缩略图。")
        # Never kept by a browser: a hall's shared computer would show the next citizen
        # the last one's ID card, even from the cache after logout.
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
    return StreamingResponse(
        store.chunks(case_file.sha256),
        media_type=case_file.content_type,
        headers=stored_file_headers(case_file.content_type, case_file.filename, case_file.size),
    )


@router.get("/cases/{case_no}/files/{file_id}")
def view_file(
    request: Request, case_no: str, file_id: RowId, session: DbSession, account: LoggedIn
):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _file_response(request, materials.get_case_file(session, case=case, file_id=file_id))


@router.get("/cases/{case_no}/files/{file_id}/thumb")
def view_thumb(
    request: Request, case_no: str, file_id: RowId, session: DbSession, account: LoggedIn
):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _file_response(
        request, materials.get_case_file(session, case=case, file_id=file_id), thumb=True
    )


@router.get("/cases/{case_no}/licence")
def download_licence(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return licence_response(request.app.state.store, case)


@router.get("/cases/{case_no}/documents/{document_no}")
def download_document(
    request: Request, case_no: str, document_no: str, session: DbSession, account: LoggedIn
):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return document_response(request.app.state.store, case, document_no)


@router.get("/cases/{case_no}/review")
def review_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _page(request, session, case, account, "cases/review.html")


def _review_with_errors(
    request, session, case, account, exc: DomainError, kind: str = "", values=None
):
    return _page(
        request,
        session,
        case,
        account,
        "cases/review.html",
        errors=exc.fields or {"submit": exc.message},
        error_message=exc.message,
        status_code=exc.status,
        request_kind=kind,
        values=values or {},  # ticked boxes come back ticked
    )


@router.post("/cases/{case_no}/prereview")
def submit_prereview(
    request: Request,
    case_no: str,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
    rule: Filing,
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    try:
        service.submit_for_prereview(session, case=case, account=account, rule=rule)
    except (Invalid, VerificationRequired) as exc:
        session.rollback()
        return _review_with_errors(request, session, case, account, exc)
    return redirect(f"/cases/{case.case_no}/submitted")


@router.post("/cases/{case_no}/submission")
def submit_formal(
    request: Request,
    case_no: str,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
    rule: Filing,
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    deferred = [v for v in form.getlist("deferred") if isinstance(v, str)]
    gaozhi = form.get("commitment_kind") == "gaozhi"
    try:
        service.submit_formally(
            session,
            case=case,
            account=account,
            rule=rule,
            deferred=deferred,
            accepted=form.get("gaozhi_accepted" if gaozhi else "commitment_accepted") == "true",
            kind="gaozhi" if gaozhi else "rongque",
        )
    except (Invalid, VerificationRequired) as exc:
        session.rollback()
        ticked = {
            "deferred": deferred,
            "commitment_accepted": form.get("commitment_accepted") == "true",
            "gaozhi_accepted": form.get("gaozhi_accepted") == "true",
        }
        return _review_with_errors(
            request, session, case, account, exc, "gaozhi" if gaozhi else "rongque", ticked
        )
    return redirect(f"/cases/{case.case_no}/submitted")


@router.get("/cases/{case_no}/submitted")
def submitted_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _page(request, session, case, account, "cases/submitted.html")


@router.get("/cases/{case_no}/withdraw")
def withdraw_page(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _page(request, session, case, account, "cases/withdraw.html")


@router.post("/cases/{case_no}/withdraw")
def withdraw_submit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    was_draft = case.status == states.DRAFT
    reason = form.get("reason")
    service.withdraw_case(session, case=case, reason=reason if isinstance(reason, str) else "")
    flash(request, "草稿已删除。" if was_draft else "申请已撤回，我们已通知审批局。")
    return redirect("/cases")


# --- 补交 (materials deferred under 容缺受理) -----------------------------------------------


@router.post("/cases/{case_no}/supplements/{material_code}/files")
async def supplement_upload(
    request: Request, case_no: str, material_code: str, session: DbSession, account: LoggedIn
):
    return await _upload(
        request,
        session,
        account,
        case_no,
        material_code,
        check=service.check_can_supplement,
        attach=service.attach_supplement_file,
    )


@router.post("/cases/{case_no}/supplements/files/{file_id}/delete")
def supplement_delete(
    request: Request,
    case_no: str,
    file_id: str,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    if not file_id.isdigit() or not 0 < int(file_id) < 2**31:
        raise NotFound("没有找到该文件。", code="file_not_found")
    service.remove_supplement_file(
        session, case=case, item=_item(session, case), file_id=int(file_id)
    )
    flash(request, "已删除该文件。")
    return redirect(f"/cases/{case.case_no}#supplement")


@router.get("/cases/{case_no}/supplement")
def supplement_review(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _page(request, session, case, account, "cases/supplement.html")


def _send_or_show(request, session, case, account, send, template: str, done: str):
    """Send what the check page shows (补交 or 补正); its errors on the same page (422)."""
    try:
        send(session, case=case, account=account)
    except Invalid as exc:
        session.rollback()
        return _page(
            request,
            session,
            case,
            account,
            template,
            errors=exc.fields,
            error_message=exc.message,
            status_code=422,
        )
    flash(request, done)
    return redirect(f"/cases/{case.case_no}")


@router.post("/cases/{case_no}/supplement")
def supplement_submit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    return _send_or_show(
        request,
        session,
        case,
        account,
        service.supplement_materials,
        "cases/supplement.html",
        "容缺材料已补交，我们已发送给审批局。",
    )


# --- 补正 after the formal submission (§32) -----------------------------------------------


@router.get("/cases/{case_no}/correction")
def correction_review(request: Request, case_no: str, session: DbSession, account: LoggedIn):
    case = service.get_own_case(session, account=account, case_no=case_no)
    return _page(request, session, case, account, "cases/correction.html")


@router.post("/cases/{case_no}/correction")
def correction_submit(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = service.get_own_case(session, account=account, case_no=case_no, for_update=True)
    return _send_or_show(
        request,
        session,
        case,
        account,
        service.submit_correction,
        "cases/correction.html",
        "补正材料已提交，我们已发送给审批局。",
    )
