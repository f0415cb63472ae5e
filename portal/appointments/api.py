"""Appointments JSON API: options, free places, booking and cancelling."""

from __future__ import annotations

from portal.api import ApiAccount, described
from portal.appointments import service
from portal.appointments.schemas import (
    AppointmentListOut,
    AppointmentOut,
    BookIn,
    OptionsOut,
    SlotsOut,
)
from portal.cases import service as cases
from portal.catalogue.models import Hall
from portal.catalogue.service import filed_item, get_hall
from portal.clock import calendar_covers
from portal.db import DbSession
from portal.errors import NotFound
from portal.routing import Router

router = Router(prefix="/api/v1", tags=["appointments"])
R401 = described(401, "未登录")
R404 = described(404, "没有该办件或预约（或不属于当前账户）")
R409 = described(409, "已约满、已有预约或办件不需要预约")
R422 = described(422, "日期不是工作日、超出可预约范围或窗口不办理此业务")


def _hall(h: Hall) -> dict:
    return {"code": h.code, "name": h.name, "address": h.address}


@router.get(
    "/cases/{case_no}/appointment-options", response_model=OptionsOut, responses=R401 | R404
)
def api_options(case_no: str, session: DbSession, account: ApiAccount) -> dict:
    """What the case may book, on which days, at which windows."""
    case = cases.get_own_case(session, account=account, case_no=case_no)
    item = filed_item(session, case.item_code)
    purposes = service.purposes_for(session, case=case, item=item)
    return {
        "purposes": purposes,
        "days": [
            {"date": d, "provisional": not calendar_covers(d)} for d in service.bookable_days()
        ],
        "windows": {
            p: [
                {
                    "hall": _hall(w.hall),
                    "window": w.number,
                    "name": w.name,
                    "daily_capacity": w.daily_capacity,
                }
                for w in service.windows_for(session, item=item, purpose=p)
            ]
            for p in purposes
        },
    }


@router.get("/appointment-slots", response_model=SlotsOut, responses=R404 | R422)
def api_slots(session: DbSession, hall: str, window: int, date: str) -> dict:
    """Free places of one window on one day, morning and afternoon (public)."""
    found = get_hall(session, hall[:32]) if "\x00" not in hall else None
    spec = next((w for w in (found.windows if found else []) if w["number"] == window), None)
    if found is None or spec is None:
        raise NotFound("没有这个大厅窗口。", code="window_not_found")
    day = service.parse_day(date)
    choice = service.WindowChoice(found, window, spec["name"], spec["daily_capacity"])
    return {
        "hall": found.code,
        "window": window,
        "date": day,
        "provisional": not calendar_covers(day),
        "periods": [
            {
                "period": p,
                "capacity": service.period_capacity(choice.daily_capacity, p),
                "left": service.slot_left(session, choice=choice, day=day, period=p),
            }
            for p in service.PERIODS
        ],
    }


@router.get(
    "/cases/{case_no}/appointments", response_model=AppointmentListOut, responses=R401 | R404
)
def api_list(case_no: str, session: DbSession, account: ApiAccount) -> dict:
    case = cases.get_own_case(session, account=account, case_no=case_no)
    found = service.case_appointments(session, case=case)
    return {"appointments": [service.appointment_view(session, a) for a in found]}


@router.post(
    "/cases/{case_no}/appointments",
    status_code=201,
    response_model=AppointmentOut,
    responses=R401 | R404 | R409 | R422,
)
def api_book(case_no: str, body: BookIn, session: DbSession, account: ApiAccount) -> dict:
    """Book a half-day slot; the bureau receives `appointment.booked`."""
    case = cases.get_own_case(session, account=account, case_no=case_no, for_update=True)
    item = filed_item(session, case.item_code)
    appointment = service.book_appointment(
        session,
        account=account,
        case=case,
        item=item,
        purpose=body.purpose,
        hall_code=body.hall,
        window=body.window,
        day=body.date,
        period=body.period,
    )
    return service.appointment_view(session, appointment)


@router.post(
    "/appointments/{appointment_id}/cancellation",
    response_model=AppointmentOut,
    responses=R401 | R404 | R409,
)
def api_cancel(appointment_id: str, session: DbSession, account: ApiAccount) -> dict:
    """Cancel; the place is free again and the bureau receives `appointment.cancelled`."""
    appointment = service.cancel_appointment(
        session, account=account, appointment_id=appointment_id
    )
    return service.appointment_view(session, appointment)
