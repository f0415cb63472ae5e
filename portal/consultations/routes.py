"""12345 pages: ask or complain (with a check page), my questions, one question and its answer.

Without an account the form asks for a contact phone and an SMS code (its 获取验证码 button
is a second submit button of the form, so it works with JavaScript off); the citizen is
given a reference number and reads the answer again on /consultations/lookup with the
phone, the reference and a new code.
"""

from __future__ import annotations

from typing import Any

from fastapi import BackgroundTasks, Request

from portal.cases import service as cases
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.service import find_item
from portal.clock import utcnow
from portal.consultations import limits, service
from portal.db import DbSession
from portal.errors import DomainError, Invalid, NotFound, Throttled
from portal.routing import Router
from portal.security import mask_phone
from portal.verification import service as verification
from portal.verification.api import client_address, send_after_commit
from portal.web import CsrfForm, CurrentAccount, LoggedIn, flash, redirect, render

router = Router(include_in_schema=False)
FIELDS = ("kind", "case_no", "subject", "body", "contact_name", "contact_phone", "code")
LOOKUP_FIELDS = ("phone", "reference", "code")
LOOKUP_LABELS = {"phone": "手机号码", "reference": "咨询投诉编号", "code": "短信验证码"}
# A browser that proved the phone may open that consultation again for a while, without
# a new code; on a hall's shared computer the next citizen finds it closed soon after.
VIEW_SECONDS = 30 * 60
VIEWS_KEPT = 5
ANONYMOUS_NOT_FOUND = (
    "没有找到该咨询投诉。登录后提交的，请登录后在“我的咨询投诉”查看；"
    "不登录提交的，请在“查询咨询投诉答复”凭手机号码和编号查询。"
)


def _case_options(session, account) -> list[tuple[str, str]]:
    if account is None:
        return []
    rows = []
    for case in cases.list_own_cases(session, account=account):
        item = find_item(session, case.item_code)
        label = states.STATUS_LABELS[case.status]
        rows.append((case.case_no, f"{case.case_no} {item.name if item else ''}（{label}）"))
    return rows


def _form(
    request,
    session,
    account,
    values,
    errors=None,
    message="",
    status_code=200,
    headers=None,
    code_notice="",
):
    # The summary lists the problems in the order of the fields on the page.
    errors = dict(
        sorted(
            (errors or {}).items(), key=lambda kv: FIELDS.index(kv[0]) if kv[0] in FIELDS else 99
        )
    )
    return render(
        request,
        "consultations/form.html",
        {
            "values": values,
            "errors": errors,
            "error_message": message,
            "kinds": list(service.KINDS.items()),
            "case_options": _case_options(session, account),
            "limits": service.ANSWER_WORKING_DAYS,
            "masked_phone": mask_phone(account.phone) if account else "",
            "anonymous": account is None,
            "sms_available": request.app.state.settings.sms_codes_available,
            "code_action": "/consultations/code",
            "code_notice": code_notice,
        },
        status_code=status_code,
        headers=headers,
    )


def _values(form, names=FIELDS) -> dict[str, str]:
    return {k: (v if isinstance(v := form.get(k), str) else "") for k in names}


def _grant(request: Request, consultation_id: str) -> None:
    now = int(utcnow().timestamp())
    views = {
        k: v
        for k, v in dict(request.session.get("consultation_views") or {}).items()
        if isinstance(v, int) and v > now
    }
    views[consultation_id] = now + VIEW_SECONDS
    kept = sorted(views.items(), key=lambda kv: kv[1])[-VIEWS_KEPT:]
    request.session["consultation_views"] = dict(kept)


def _granted(request: Request, consultation_id: str) -> bool:
    until = (request.session.get("consultation_views") or {}).get(consultation_id)
    return isinstance(until, int) and until > int(utcnow().timestamp())


def _send_code(request, session, background, phone: str) -> tuple[str, dict[str, str], Any]:
    """Ask for a consultation code: (notice, field errors, the refusal if any)."""
    try:
        issued = verification.request_code(
            session,
            settings=request.app.state.settings,
            phone=phone,
            purpose=service.CODE_PURPOSE,
            client_ip=client_address(request),
        )
    except Invalid as exc:
        return "", exc.fields, exc
    except DomainError as exc:  # Throttled (429, Retry-After) or SmsUnavailable (503)
        return "", {}, exc
    send_after_commit(request, background, issued)
    notice = (
        f"验证码已发送至 {mask_phone(phone.replace(' ', ''))}，5 分钟内有效；"
        f"{issued.resend_after} 秒后可重新获取。"
    )
    return notice, {}, None


@router.get("/consultations")
def my_consultations(request: Request, session: DbSession, account: LoggedIn):
    rows = [service.consultation_view(c) for c in service.list_own(session, account=account)]
    return render(request, "consultations/list.html", {"rows": rows})


@router.get("/consultations/new")
def new_page(request: Request, session: DbSession, account: CurrentAccount, case_no: str = ""):
    return _form(request, session, account, {"case_no": case_no[:20], "kind": "consult"})


@router.post("/consultations/code")
def send_code(
    request: Request,
    session: DbSession,
    account: CurrentAccount,
    form: CsrfForm,
    background: BackgroundTasks,
):
    values = _values(form)
    notice, errors, refused = _send_code(request, session, background, values["contact_phone"])
    if refused is not None:
        if "phone" in errors:
            errors = {"contact_phone": errors["phone"]}
        return _form(
            request,
            session,
            account,
            values,
            errors,
            refused.message or "请按提示修改。",
            refused.status,
            refused.headers or None,
        )
    return _form(request, session, account, values, code_notice=notice)


@router.post("/consultations/check")
def check_page(request: Request, session: DbSession, account: CurrentAccount, form: CsrfForm):
    values = _values(form)
    try:
        checked = service.check_consultation(session, account=account, **values)
    except Invalid as exc:
        return _form(request, session, account, values, exc.fields, exc.message, 422)
    case: Case | None = checked["case"]
    return render(
        request,
        "consultations/check.html",
        {
            "values": values,
            "checked": checked,
            "kind_label": service.KINDS[checked["kind"]],
            "case_label": dict(_case_options(session, account)).get(case.case_no) if case else "",
            "due": service.due_date_for(checked["kind"]),
            "limit": service.ANSWER_WORKING_DAYS[checked["kind"]],
            "anonymous": account is None,
        },
    )


@router.post("/consultations/edit")
def edit_page(request: Request, session: DbSession, account: CurrentAccount, form: CsrfForm):
    return _form(request, session, account, _values(form))


@router.post("/consultations")
def submit(request: Request, session: DbSession, account: CurrentAccount, form: CsrfForm):
    values = _values(form)
    try:
        if account is None:
            consultation = service.submit_without_account(
                session,
                db=request.app.state.db,
                settings=request.app.state.settings,
                client_ip=client_address(request),
                **values,
            )
        else:
            limits.take_submission(session, account=account, client_ip=client_address(request))
            consultation = service.submit_consultation(session, account=account, **values)
    except (Invalid, Throttled) as exc:
        session.rollback()
        # The form comes back filled in, so nothing typed is lost while waiting.
        return _form(
            request, session, account, values, exc.fields, exc.message, exc.status, exc.headers
        )
    label = service.KINDS[consultation.kind]
    if account is None:
        _grant(request, consultation.consultation_id)
        flash(
            request,
            f"{label}已提交给 12345 和审批局，编号 {consultation.reference}，请记下。"
            "答复后会短信通知您，凭手机号码和编号可随时查询答复。",
        )
    else:
        flash(request, f"{label}已提交给 12345 和审批局，答复会发到消息中心。")
    return redirect(f"/consultations/{consultation.consultation_id}")


# --- finding one sent without an account -----------------------------------------------------


def _lookup(request, values, errors=None, message="", status_code=200, headers=None, notice=""):
    return render(
        request,
        "consultations/lookup.html",
        {
            "values": values,
            "errors": errors or {},
            "labels": LOOKUP_LABELS,
            "form_error": message,
            "sms_available": request.app.state.settings.sms_codes_available,
            "code_action": "/consultations/lookup/code",
            "code_notice": notice,
        },
        status_code=status_code,
        headers=headers,
    )


@router.get("/consultations/lookup")
def lookup_page(request: Request, account: CurrentAccount, ref: str = ""):
    return _lookup(request, {"phone": "", "reference": ref.strip()[:16], "code": ""})


@router.post("/consultations/lookup/code")
def lookup_code(request: Request, session: DbSession, form: CsrfForm, background: BackgroundTasks):
    values = _values(form, LOOKUP_FIELDS)
    notice, errors, refused = _send_code(request, session, background, values["phone"])
    if refused is not None:
        message = "" if errors else refused.message
        return _lookup(request, values, errors, message, refused.status, refused.headers or None)
    return _lookup(request, values, notice=notice)


@router.post("/consultations/lookup")
def lookup_submit(request: Request, session: DbSession, form: CsrfForm):
    values = _values(form, LOOKUP_FIELDS)
    try:
        found = service.find_by_reference(
            session,
            db=request.app.state.db,
            settings=request.app.state.settings,
            **values,
        )
    except Invalid as exc:
        return _lookup(request, values, exc.fields, status_code=exc.status)
    except NotFound as exc:
        return _lookup(request, {**values, "code": ""}, message=exc.message, status_code=404)
    _grant(request, found.consultation_id)
    return redirect(f"/consultations/{found.consultation_id}")


@router.get("/consultations/{consultation_id}")
def detail_page(
    request: Request, consultation_id: str, session: DbSession, account: CurrentAccount
):
    if _granted(request, consultation_id):
        consultation = service.get_by_id(session, consultation_id=consultation_id)
    elif account is not None:
        consultation = service.get_own(session, account=account, consultation_id=consultation_id)
    else:
        # Answered like a missing one whoever it belongs to, pointing to both ways in.
        raise NotFound(ANONYMOUS_NOT_FOUND, code="consultation_not_found")
    case = session.get(Case, consultation.case_id) if consultation.case_id else None
    view = service.consultation_view(consultation, case.case_no if case else None)
    return render(
        request,
        "consultations/detail.html",
        {"c": view, "anonymous": consultation.account_id is None},
    )
