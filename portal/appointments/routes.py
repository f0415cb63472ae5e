"""Appointment pages: choose a slot, confirm it, book; cancel."""

from __future__ import annotations

from datetime import date

from fastapi import Request

from portal.appointments import service
from portal.cases import service as cases
from portal.catalogue.service import filed_item, get_hall
from portal.clock import calendar_covers
from portal.db import DbSession
from portal.errors import Conflict, Invalid
from portal.routing import Router
from portal.web import CsrfForm, LoggedIn, flash, redirect, render

router = Router(include_in_schema=False)
WEEKDAYS = "一二三四五六日"


def _day_label(day: date) -> str:
    label = f"{day.month}月{day.day}日 星期{WEEKDAYS[day.weekday()]}"
    return label + ("（预计，节假日安排公布后可能调整）" if not calendar_covers(day) else "")


def _form_context(session, case, item, purpose: str) -> dict:
    purposes = service.purposes_for(session, case=case, item=item)
    if purpose not in purposes:
        raise Conflict(
            "该办件目前不需要预约到大厅。需要现场办理的事项在提交后可以预约；"
            "选择窗口领取证照的，办结后可以预约领取。",
            code="not_bookable",
        )
    windows = service.windows_for(session, item=item, purpose=purpose)
    return {
        "case": case,
        "item": item,
        "purpose": purpose,
        "purpose_label": service.PURPOSES[purpose],
        "window_options": [
            (w.key, f"{w.hall.name} · {w.number} 号窗口（{w.name}）") for w in windows
        ],
        "day_options": [(d.isoformat(), _day_label(d)) for d in service.bookable_days()],
        "period_options": list(service.PERIODS.items()),
        "provisional_any": any(not calendar_covers(d) for d in service.bookable_days()),
    }


def _fields(form) -> dict[str, str]:
    return {
        k: (v if isinstance(v := form.get(k), str) else "")
        for k in ("purpose", "slot", "date", "period")
    }


def _split(slot: str) -> tuple[str, str]:
    hall, _, window = slot.partition(":")
    return hall, window


def _form_page(request, session, case, item, values, errors, message="", status_code=422):
    context = _form_context(session, case, item, values["purpose"])
    context.update(values=values, errors=errors, error_message=message)
    return render(request, "appointments/form.html", context, status_code=status_code)


@router.get("/cases/{case_no}/appointments/new")
def new_page(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, purpose: str = "visit"
):
    case = cases.get_own_case(session, account=account, case_no=case_no)
    item = filed_item(session, case.item_code)
    context = _form_context(session, case, item, purpose)
    context["values"] = {"purpose": purpose}
    return render(request, "appointments/form.html", context)


def _check(session, case, item, values):
    hall, window = _split(values["slot"])
    try:
        return service.check_request(
            session,
            case=case,
            item=item,
            purpose=values["purpose"],
            hall_code=hall,
            window=window,
            day=values["date"],
            period=values["period"],
        )
    except Invalid as exc:
        # The window choice is one field on the page.
        fields = dict(exc.fields)
        if "window" in fields:
            fields["slot"] = fields.pop("window")
        raise Invalid(fields, exc.message) from None


@router.post("/cases/{case_no}/appointments/check")
def check_page(
    request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    case = cases.get_own_case(session, account=account, case_no=case_no)
    item = filed_item(session, case.item_code)
    values = _fields(form)
    try:
        booking = _check(session, case, item, values)
    except Invalid as exc:
        return _form_page(request, session, case, item, values, exc.fields, exc.message)
    return render(
        request,
        "appointments/check.html",
        {
            "case": case,
            "item": item,
            "values": values,
            "booking": booking,
            "day_label": _day_label(booking.day),
            "purpose_label": service.PURPOSES[booking.purpose],
            "period_label": service.PERIODS[booking.period],
        },
    )


@router.post("/cases/{case_no}/appointments")
def book(request: Request, case_no: str, session: DbSession, account: LoggedIn, form: CsrfForm):
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = filed_item(session, case.item_code)
    values = _fields(form)
    hall, window = _split(values["slot"])
    try:
        appointment = service.book_appointment(
            session,
            account=account,
            case=case,
            item=item,
            purpose=values["purpose"],
            hall_code=hall,
            window=window,
            day=values["date"],
            period=values["period"],
        )
    except Invalid as exc:
        session.rollback()
        fields = dict(exc.fields)
        if "window" in fields:
            fields["slot"] = fields.pop("window")
        return _form_page(request, session, case, item, values, fields, exc.message)
    except Conflict as exc:
        session.rollback()
        if exc.code not in ("slot_full", "already_booked"):
            raise
        key = "period" if exc.code == "slot_full" else "slot"
        return _form_page(
            request, session, case, item, values, {key: exc.message}, exc.message, 409
        )
    hall_row = get_hall(session, appointment.hall_code)
    flash(
        request,
        f"预约成功：{appointment.date.month}月{appointment.date.day}日"
        f"{service.PERIODS[appointment.period]}，{hall_row.name if hall_row else ''} "
        f"{appointment.window} 号窗口。请带好身份证件按时到达。",
    )
    return redirect(f"/cases/{case.case_no}#appointments")


@router.get("/appointments/{appointment_id}/cancel")
def cancel_page(request: Request, appointment_id: str, session: DbSession, account: LoggedIn):
    appointment = service.get_own_appointment(
        session, account=account, appointment_id=appointment_id
    )
    return render(
        request,
        "appointments/cancel.html",
        {"appointment": service.appointment_view(session, appointment)},
    )


@router.post("/appointments/{appointment_id}/cancel")
def cancel(
    request: Request, appointment_id: str, session: DbSession, account: LoggedIn, form: CsrfForm
):
    appointment = service.cancel_appointment(
        session, account=account, appointment_id=appointment_id
    )
    view = service.appointment_view(session, appointment)
    flash(request, "预约已取消，号源已释放。")
    return redirect(f"/cases/{view['case_no']}#appointments")
