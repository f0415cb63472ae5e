"""预约: half-day slots at hall windows, capped by each window's daily capacity.

A slot is (hall, window, date, period). A window's `daily_capacity` is split
between the morning (the odd one goes to the morning) and the afternoon. Only
working days of the official calendar can be booked; for a year whose calendar
is not yet published Monday to Friday are offered and marked provisional.

Capacity holds under concurrent requests because a booking raises the slot's
counter with one conditional UPDATE (`booked = booked + 1 WHERE booked <
capacity`): on PostgreSQL the row lock makes the second writer re-check the
condition against the committed count, on SQLite writers are serialised by
`BEGIN IMMEDIATE`. Exactly as many bookings as the capacity succeed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.accounts.models import Account
from portal.appointments.models import Appointment, SlotCounter
from portal.cases import states
from portal.cases.models import Case
from portal.catalogue.models import Hall, Item
from portal.catalogue.service import get_hall, halls_of
from portal.clock import calendar_covers, is_working_day, today_cst, utcnow
from portal.delivery.models import Delivery
from portal.errors import Conflict, Invalid, NotFound
from portal.exchange import payloads
from portal.exchange.outbox import enqueue_event

HORIZON_WORKING_DAYS = 10  # bookable: the next ten working days, from tomorrow
PERIODS = {"am": "上午 9:00-12:00", "pm": "下午 13:00-17:00"}
PURPOSES = {"visit": "到大厅现场办理", "pickup": "到大厅领取证照"}
VISIT_STATUSES = frozenset(
    {
        states.PREREVIEW,
        states.RETURNED,
        states.PASSED,
        states.SUBMITTED,
        states.CORRECTION,
        states.ACCEPTED,
    }
)
NOT_FOUND_MESSAGE = "没有找到该预约。"
FULL_MESSAGE = "该时段已约满，请选择其他日期、时段或窗口。"


def period_capacity(daily: int, period: str) -> int:
    """The morning gets the odd one: 5 a day is 3 in the morning and 2 in the afternoon."""
    return daily - daily // 2 if period == "am" else daily // 2


def bookable_days(today: date | None = None) -> list[date]:
    """The next working days that can be booked, tomorrow first."""
    day = today or today_cst()
    found: list[date] = []
    while len(found) < HORIZON_WORKING_DAYS:
        day += timedelta(days=1)
        if is_working_day(day):
            found.append(day)
    return found


def purposes_for(session: Session, *, case: Case, item: Item) -> list[str]:
    """What this case may book now: a visit while it is handled, a pickup once approved."""
    # Only a pickup depends on the delivery choice: read it only when one could be booked.
    pickup = case.status == states.APPROVED and bool(item.halls)
    return purposes_given(case, item, session.get(Delivery, case.id) if pickup else None)


def purposes_given(case: Case, item: Item, delivery: Delivery | None) -> list[str]:
    """`purposes_for` from the case's delivery choice, for a caller that has read it already."""
    found = []
    if item.visits > 0 and case.status in VISIT_STATUSES:
        found.append("visit")
    collecting = delivery is None or (delivery.method == "pickup" and delivery.delivered_at is None)
    if case.status == states.APPROVED and item.halls and collecting:
        found.append("pickup")
    return found


@dataclass(frozen=True)
class WindowChoice:
    hall: Hall
    number: int
    name: str
    daily_capacity: int

    @property
    def key(self) -> str:
        return f"{self.hall.code}:{self.number}"


def windows_for(session: Session, *, item: Item, purpose: str) -> list[WindowChoice]:
    """The windows of the item's halls that serve this purpose."""
    return [
        WindowChoice(hall, w["number"], w["name"], w["daily_capacity"])
        for hall in halls_of(session, item)
        for w in hall.windows
        if w["purpose"] == purpose
    ]


def _parse_window(choices: list[WindowChoice], hall_code: str, window: Any) -> WindowChoice:
    for choice in choices:
        if choice.hall.code == hall_code and str(choice.number) == str(window):
            return choice
    raise Invalid({"window": "请选择列出的大厅窗口"}, "所选大厅窗口不办理此项业务。")


def parse_day(text: Any, today: date | None = None) -> date:
    """A bookable working day, or 422 saying why not."""
    try:
        day = date.fromisoformat(str(text).strip())
    except ValueError:
        raise Invalid({"date": "请选择预约日期（格式 2026-12-01）"}) from None
    today = today or today_cst()
    if day <= today:
        raise Invalid({"date": "只能预约明天及以后的日期"})
    if not is_working_day(day):
        raise Invalid({"date": f"{day.month}月{day.day}日是法定节假日或休息日，大厅不办公"})
    if day > bookable_days(today)[-1]:
        raise Invalid({"date": f"只能预约 {HORIZON_WORKING_DAYS} 个工作日以内的日期"})
    return day


def slot_left(session: Session, *, choice: WindowChoice, day: date, period: str) -> int:
    counter = session.get(SlotCounter, (choice.hall.code, choice.number, day, period))
    return period_capacity(choice.daily_capacity, period) - (counter.booked if counter else 0)


def _take_slot(session: Session, *, choice: WindowChoice, day: date, period: str) -> bool:
    """Raise the slot's counter if it is below capacity; False when the slot is full."""
    capacity = period_capacity(choice.daily_capacity, period)
    if capacity <= 0:
        return False
    keys = {"hall_code": choice.hall.code, "window": choice.number, "date": day, "period": period}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(SlotCounter).values(**keys, booked=0).on_conflict_do_nothing())
    result = session.execute(
        update(SlotCounter)
        .where(
            SlotCounter.hall_code == choice.hall.code,
            SlotCounter.window == choice.number,
            SlotCounter.date == day,
            SlotCounter.period == period,
            SlotCounter.booked < capacity,
        )
        .values(booked=SlotCounter.booked + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


@dataclass
class BookingRequest:
    """A checked booking request (what the confirmation page shows)."""

    purpose: str
    choice: WindowChoice
    day: date
    period: str
    left: int

    @property
    def provisional(self) -> bool:
        return not calendar_covers(self.day)


def check_request(
    session: Session,
    *,
    case: Case,
    item: Item,
    purpose: Any,
    hall_code: Any,
    window: Any,
    day: Any,
    period: Any,
) -> BookingRequest:
    """Every field of a booking checked, with 中文 reasons per field (422) or 409."""
    allowed = purposes_for(session, case=case, item=item)
    if purpose not in PURPOSES:
        raise Invalid({"purpose": "请选择预约事由"})
    if purpose not in allowed:
        raise Conflict(
            "该办件目前不需要预约到大厅"
            + ("办理。" if purpose == "visit" else "领取证照（尚未办结，或已选择快递）。"),
            code="not_bookable",
        )
    errors: dict[str, str] = {}
    choice = parsed_day = None
    try:
        choice = _parse_window(windows_for(session, item=item, purpose=purpose), hall_code, window)
    except Invalid as exc:
        errors |= exc.fields
    try:
        parsed_day = parse_day(day)
    except Invalid as exc:
        errors |= exc.fields
    if period not in PERIODS:
        errors["period"] = "请选择上午或下午"
    if errors:
        raise Invalid(errors, "预约信息有误，请按提示修改。")
    assert choice is not None and parsed_day is not None
    left = slot_left(session, choice=choice, day=parsed_day, period=period)
    return BookingRequest(purpose, choice, parsed_day, period, left)


def live_appointment(session: Session, *, case: Case, purpose: str) -> Appointment | None:
    return session.scalars(
        select(Appointment).where(
            Appointment.case_id == case.id,
            Appointment.purpose == purpose,
            Appointment.status == "booked",
        )
    ).first()


def book_appointment(
    session: Session,
    *,
    account: Account,
    case: Case,
    item: Item,
    purpose: Any,
    hall_code: Any,
    window: Any,
    day: Any,
    period: Any,
) -> Appointment:
    """Book a slot if one is left; 409 when full or when the case already has one."""
    request = check_request(
        session,
        case=case,
        item=item,
        purpose=purpose,
        hall_code=hall_code,
        window=window,
        day=day,
        period=period,
    )
    live = live_appointment(session, case=case, purpose=request.purpose)
    if live is not None and not is_working_day(live.date):
        # Rebooking a day a later notice closed (the citizen was told to rebook): the old
        # booking is cancelled in this same transaction, so the case never has two.
        cancel_appointment(session, account=account, appointment_id=live.appointment_id)
    elif live is not None:
        raise Conflict("该办件已有一个预约，请先取消原预约再重新预约。", code="already_booked")
    if not _take_slot(session, choice=request.choice, day=request.day, period=request.period):
        raise Conflict(FULL_MESSAGE, code="slot_full")
    appointment = Appointment(
        appointment_id=str(uuid.uuid4()),
        account_id=account.id,
        case_id=case.id,
        purpose=request.purpose,
        hall_code=request.choice.hall.code,
        window=request.choice.number,
        date=request.day,
        period=request.period,
    )
    try:
        with session.begin_nested():
            session.add(appointment)
    except IntegrityError:  # the same case booked in a parallel request just now
        raise Conflict(
            "该办件已有一个预约，请先取消原预约再重新预约。", code="already_booked"
        ) from None
    hall = request.choice.hall
    states.record(
        session,
        case,
        type="appointment.booked",
        label="预约" + PURPOSES[request.purpose],
        detail=f"{hall.name} {request.choice.number} 号窗口（{request.choice.name}），"
        f"{request.day.isoformat()} {PERIODS[request.period]}",
        source="citizen",
    )
    enqueue_event(
        session,
        type="appointment.booked",
        case_no=case.case_no,
        data=payloads.appointment_booked_data(appointment, hall),
    )
    case.updated_at = utcnow()
    return appointment


def get_own_appointment(session: Session, *, account: Account, appointment_id: str) -> Appointment:
    """The account's appointment; another account's is 404 exactly like a missing one."""
    appointment = session.scalars(
        select(Appointment).where(
            Appointment.appointment_id == appointment_id[:36].replace("\x00", ""),
            Appointment.account_id == account.id,
        )
    ).first()
    if appointment is None:
        raise NotFound(NOT_FOUND_MESSAGE, code="appointment_not_found")
    return appointment


def cancel_appointment(session: Session, *, account: Account, appointment_id: str) -> Appointment:
    """Give the slot back and tell the bureau."""
    appointment = get_own_appointment(session, account=account, appointment_id=appointment_id)
    if appointment.status != "booked":
        raise Conflict("该预约已经取消。", code="already_cancelled")
    if appointment.date < today_cst():
        raise Conflict("预约日期已过，不能取消。", code="past")
    appointment.status = "cancelled"
    appointment.cancelled_at = utcnow()
    session.execute(
        update(SlotCounter)
        .where(
            SlotCounter.hall_code == appointment.hall_code,
            SlotCounter.window == appointment.window,
            SlotCounter.date == appointment.date,
            SlotCounter.period == appointment.period,
            SlotCounter.booked > 0,
        )
        .values(booked=SlotCounter.booked - 1)
        .execution_options(synchronize_session=False)
    )
    case = session.get(Case, appointment.case_id)
    assert case is not None
    states.record(
        session,
        case,
        type="appointment.cancelled",
        label="取消预约",
        detail=f"{appointment.date.isoformat()} {PERIODS[appointment.period]}",
        source="citizen",
    )
    enqueue_event(
        session,
        type="appointment.cancelled",
        case_no=case.case_no,
        data=payloads.appointment_cancelled_data(appointment),
    )
    return appointment


def case_appointments(session: Session, *, case: Case) -> list[Appointment]:
    query = (
        select(Appointment)
        .where(Appointment.case_id == case.id)
        .order_by(Appointment.booked_at.desc(), Appointment.id.desc())
    )
    return list(session.scalars(query))


def appointment_view(session: Session, appointment: Appointment) -> dict[str, Any]:
    hall = get_hall(session, appointment.hall_code)
    window: dict[str, Any] = next(
        (w for w in (hall.windows if hall else []) if w["number"] == appointment.window), {}
    )
    case = session.get(Case, appointment.case_id)
    return {
        "appointment_id": appointment.appointment_id,
        "case_no": case.case_no if case else None,
        "purpose": appointment.purpose,
        "purpose_label": PURPOSES[appointment.purpose],
        "hall": {
            "code": appointment.hall_code,
            "name": hall.name if hall else appointment.hall_code,
            "address": hall.address if hall else "",
        },
        "window": appointment.window,
        "window_name": window.get("name", ""),
        "date": appointment.date,
        "provisional": not calendar_covers(appointment.date),
        # A notice loaded after booking closed the day: the citizen must rebook.
        "closed_day": appointment.status == "booked" and not is_working_day(appointment.date),
        "period": appointment.period,
        "period_label": PERIODS[appointment.period],
        "status": appointment.status,
        "booked_at": appointment.booked_at,
        "cancelled_at": appointment.cancelled_at,
        "cancellable": appointment.status == "booked" and appointment.date >= today_cst(),
    }
