"""Bundle pages: the list, a bundle and its savings, the one form, checklist and submission."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from portal.accounts.filing import Filing, VerificationRequired, identity_notice
from portal.bundles import checklist, pages, service
from portal.db import DbSession
from portal.errors import DomainError, Forbidden, Invalid, NotFound
from portal.materials.upload import receive_file
from portal.routing import Router
from portal.web import CsrfForm, CurrentAccount, LoggedIn, csrf_valid, flash, redirect, render

router = Router(include_in_schema=False)


def _id(application_id: str) -> int:
    # Same answer as a missing application, so probing ids reveals nothing.
    if not application_id.isdigit() or not 0 < int(application_id) < 2**31:
        raise NotFound(service.APPLICATION_NOT_FOUND, code="bundle_application_not_found")
    return int(application_id)


@router.get("/bundles")
def list_bundles(request: Request, session: DbSession, account: CurrentAccount):
    rows: list[dict[str, Any]] = []
    for bundle in service.list_bundles(session):
        items = service.bundle_items(session, bundle)
        rows.append(
            {
                "bundle": bundle,
                "items": pages.item_names(items),
                "savings": pages.savings_rows(checklist.savings(items)),
            }
        )
    names = {row["bundle"].code: row["bundle"].name for row in rows}
    mine = [
        {
            "application": a,
            "name": names.get(a.bundle_code, a.bundle_code),
            "status_label": pages.APPLICATION_STATUS[a.status],
        }
        for a in (service.list_own_applications(session, account=account) if account else [])
    ]
    return render(request, "bundles/list.html", {"rows": rows, "mine": mine})


@router.get("/bundles/{code}")
def bundle_page(request: Request, code: str, session: DbSession, account: CurrentAccount):
    bundle = service.get_bundle(session, code=code)
    return render(request, "bundles/bundle.html", pages.bundle_context(session, bundle))


@router.post("/bundles/{code}/applications")
def start(request: Request, code: str, session: DbSession, account: CurrentAccount, form: CsrfForm):
    if account is None:
        return redirect(f"/login?next={quote('/bundles/' + code)}")
    application = service.start_application(session, account=account, code=code)
    flash(request, "已创建一件事草稿。共用的信息只需填写一次，会自动保存。")
    return redirect(f"/bundle-applications/{application.id}/form")


def _page(request, session, application, account, template="bundles/application.html", **extra):
    status_code = extra.pop("status_code", 200)
    context = pages.application_context(session, application=application, account=account)
    if template == "bundles/review.html":
        plan = context["plan"]
        stage = "formal" if plan.formal or plan.gaozhi else "prereview"
        context["identity"] = identity_notice(request, account, stage)
    context.update(extra)
    return render(request, template, context, status_code=status_code)


@router.get("/bundle-applications/{application_id}")
def application_page(request: Request, application_id: str, session: DbSession, account: LoggedIn):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id)
    )
    return _page(request, session, application, account)


@router.get("/bundle-applications/{application_id}/form")
def form_page(request: Request, application_id: str, session: DbSession, account: LoggedIn):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id)
    )
    service.ensure_draft(application)
    # After a 保存 that left required fields empty: what is still missing, in page order.
    saved = request.query_params.get("saved") == "1"
    return _page(request, session, application, account, "bundles/form.html", saved=saved)


@router.post("/bundle-applications/{application_id}/form")
def form_submit(
    request: Request, application_id: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id), for_update=True
    )
    context = pages.application_context(session, application=application, account=account)
    submitted = {}
    for spec in context["fields"]:
        key = f"form.{spec['name']}"
        if spec["type"] == "checkbox":
            submitted[spec["name"]] = "true" if form.get(key) else "false"
        else:
            value = form.get(key)
            submitted[spec["name"]] = value if isinstance(value, str) else ""
    try:
        service.save_shared_form(session, application=application, form=submitted, replace=True)
    except Invalid as exc:  # each message names its field (forms.problem_text)
        session.rollback()
        return _page(
            request,
            session,
            application,
            account,
            "bundles/form.html",
            values=submitted,
            errors=exc.fields,
            status_code=422,
        )
    if pages.still_missing(session, application=application):
        return redirect(f"/bundle-applications/{application.id}/form?saved=1#still-missing")
    flash(request, "申请信息已保存，已同步到本一件事的每个事项。")
    return redirect(f"/bundle-applications/{application.id}#materials")


@router.post("/bundle-applications/{application_id}/materials/{kind}/files")
async def upload(
    request: Request, application_id: str, kind: str, session: DbSession, account: LoggedIn
):
    store = request.app.state.store
    settings = request.app.state.settings
    application = await run_in_threadpool(
        service.get_own_application, session, account=account, application_id=_id(application_id)
    )
    await run_in_threadpool(
        service.check_can_upload_kind, session, application=application, kind=kind
    )
    try:
        received = await receive_file(
            request,
            store,
            session=session,
            max_bytes=settings.max_upload_bytes,
            csrf_check=lambda token: csrf_valid(request, token),
        )
    except (Forbidden, NotFound):
        raise
    except DomainError as exc:
        return await run_in_threadpool(
            _page,
            request,
            session,
            application,
            account,
            upload_errors={kind: exc.message},
            status_code=exc.status,
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
        received.writer.discard()  # no-op once kept
    flash(request, f"已上传“{received.filename}”，同时用于 {len(attached)} 个事项。")
    return redirect(f"/bundle-applications/{application.id}#k-{kind}")


@router.post("/bundle-applications/{application_id}/materials/{kind}/library")
def attach_library(
    request: Request,
    application_id: str,
    kind: str,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id), for_update=True
    )
    raw = form.get("document_id")
    document_id = int(raw) if isinstance(raw, str) and raw.isdigit() and len(raw) < 10 else 0
    attached = service.attach_from_library(
        session, application=application, account=account, kind=kind, document_id=document_id
    )
    flash(request, f"已从材料库选用，同时用于 {len(attached)} 个事项，无需重新上传。")
    return redirect(f"/bundle-applications/{application.id}#k-{kind}")


@router.post("/bundle-applications/{application_id}/materials/{kind}/files/{sha256}/delete")
def delete_file(
    request: Request,
    application_id: str,
    kind: str,
    sha256: str,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id), for_update=True
    )
    service.remove_file(session, application=application, kind=kind, sha256=sha256)
    flash(request, "已删除该文件。")
    return redirect(f"/bundle-applications/{application.id}#k-{kind}")


@router.get("/bundle-applications/{application_id}/review")
def review_page(request: Request, application_id: str, session: DbSession, account: LoggedIn):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id)
    )
    return _page(request, session, application, account, "bundles/review.html")


@router.post("/bundle-applications/{application_id}/submission")
def submit(
    request: Request,
    application_id: str,
    session: DbSession,
    account: LoggedIn,
    form: CsrfForm,
    rule: Filing,
):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id), for_update=True
    )
    ticked: dict[str, Any] = {
        "deferred": [v for v in form.getlist("deferred") if isinstance(v, str)],
        "commitment_accepted": form.get("commitment_accepted") == "true",
        "gaozhi": [v for v in form.getlist("gaozhi") if isinstance(v, str)],
        "gaozhi_accepted": form.get("gaozhi_accepted") == "true",
    }
    try:
        plan = service.submit_application(
            session,
            application=application,
            account=account,
            rule=rule,
            deferred_kinds=ticked["deferred"],
            accepted=ticked["commitment_accepted"],
            gaozhi_items=ticked["gaozhi"],
            gaozhi_accepted=ticked["gaozhi_accepted"],
        )
    except (Invalid, VerificationRequired) as exc:
        session.rollback()
        return _page(
            request,
            session,
            application,
            account,
            "bundles/review.html",
            errors=exc.fields or {"submit": exc.message},
            error_message=exc.message,
            status_code=exc.status,
            values=ticked,  # ticked boxes come back ticked
        )
    moved = len(plan.prereview) + len(plan.formal) + len(plan.gaozhi)
    flash(request, f"已提交 {moved} 个事项，每个事项作为独立办件发送给审批局。")
    return redirect(f"/bundle-applications/{application.id}")


@router.get("/bundle-applications/{application_id}/delete")
def delete_page(request: Request, application_id: str, session: DbSession, account: LoggedIn):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id)
    )
    service.ensure_draft(application)
    return _page(request, session, application, account, "bundles/delete.html")


@router.post("/bundle-applications/{application_id}/delete")
def delete_submit(
    request: Request, application_id: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    application = service.get_own_application(
        session, account=account, application_id=_id(application_id), for_update=True
    )
    service.withdraw_draft(session, application=application)
    flash(request, "一件事草稿已删除。")
    return redirect("/bundles")
