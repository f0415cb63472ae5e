"""12345 pages: ask or complain (with a check page), my questions, one question and its answer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from portal.cases import service as cases
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.consultations import limits, service
from portal.db import DbSession
from portal.errors import Invalid, Throttled
from portal.security import mask_phone
from portal.web import CsrfForm, LoggedIn, flash, redirect, render

router = APIRouter(include_in_schema=False)
FIELDS = ("kind", "case_no", "subject", "body", "contact_name", "contact_phone")


def _case_options(session, account) -> list[tuple[str, str]]:
    rows = []
    for case in cases.list_own_cases(session, account=account):
        item = session.get(Item, case.item_code)
        label = states.STATUS_LABELS[case.status]
        rows.append((case.case_no, f"{case.case_no} {item.name if item else ''}（{label}）"))
    return rows


def _form(
    request, session, account, values, errors=None, message="", status_code=200, headers=None
):
    return render(
        request,
        "consultations/form.html",
        {
            "values": values,
            "errors": errors or {},
            "error_message": message,
            "kinds": list(service.KINDS.items()),
            "case_options": _case_options(session, account),
            "limits": service.ANSWER_WORKING_DAYS,
            "masked_phone": mask_phone(account.phone),
        },
        status_code=status_code,
        headers=headers,
    )


def _values(form) -> dict[str, str]:
    return {k: (v if isinstance(v := form.get(k), str) else "") for k in FIELDS}


@router.get("/consultations")
def my_consultations(request: Request, session: DbSession, account: LoggedIn):
    rows = [service.consultation_view(c) for c in service.list_own(session, account=account)]
    return render(request, "consultations/list.html", {"rows": rows})


@router.get("/consultations/new")
def new_page(request: Request, session: DbSession, account: LoggedIn, case_no: str = ""):
    return _form(request, session, account, {"case_no": case_no[:20], "kind": "consult"})


@router.post("/consultations/check")
def check_page(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
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
        },
    )


@router.post("/consultations/edit")
def edit_page(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
    return _form(request, session, account, _values(form))


@router.post("/consultations")
def submit(request: Request, session: DbSession, account: LoggedIn, form: CsrfForm):
    values = _values(form)
    try:
        limits.take_submission(
            session, account=account, client_ip=request.client.host if request.client else "-"
        )
        consultation = service.submit_consultation(session, account=account, **values)
    except (Invalid, Throttled) as exc:
        session.rollback()
        # The form comes back filled in, so nothing typed is lost while waiting.
        return _form(
            request, session, account, values, exc.fields, exc.message, exc.status, exc.headers
        )
    label = service.KINDS[consultation.kind]
    flash(request, f"{label}已提交给 12345 和审批局，答复会发到消息中心。")
    return redirect(f"/consultations/{consultation.consultation_id}")


@router.get("/consultations/{consultation_id}")
def detail_page(request: Request, consultation_id: str, session: DbSession, account: LoggedIn):
    consultation = service.get_own(session, account=account, consultation_id=consultation_id)
    case = session.get(Case, consultation.case_id) if consultation.case_id else None
    view = service.consultation_view(consultation, case.case_no if case else None)
    return render(request, "consultations/detail.html", {"c": view})
