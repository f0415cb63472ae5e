"""Operating the calendar: load a year's notice, recompute what was provisional, show a year.

Dates the portal computed itself (a case's due date when the bureau sent none, 容缺
deadlines, 12345 answer deadlines) keep their basis (start day and working days), so
a notice loaded later recomputes them instead of leaving a guess in place. A booked
appointment is never moved: when the notice closes its day, the citizen is told to
rebook (message + SMS) and the booking is marked so they are told once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from portal.accounts.models import Account
from portal.appointments.models import Appointment
from portal.calendar.models import CalendarYear
from portal.calendar.rules import Arrangement, WorkCalendar, bundled, parse_year
from portal.calendar.statutory import RULE_SINCE, statutory_holidays
from portal.cases.models import Case
from portal.catalogue.models import Hall, Item
from portal.clock import (
    CST,
    add_working_days,
    install_calendar,
    is_working_day,
    span_official,
    to_cst,
    today_cst,
    utcnow,
    work_calendar,
)
from portal.consultations.models import Consultation
from portal.db import Database
from portal.notifications.service import tell_account

log = logging.getLogger(__name__)
REFRESH_SECONDS = 60
PERIODS = {"am": "上午", "pm": "下午"}
WEEKDAYS = "一二三四五六日"


def build_calendar(rows: list[CalendarYear]) -> WorkCalendar:
    """The bundled years, then every loaded one (a loaded year replaces the bundled one)."""
    years = {a.year: a for a in bundled()}
    for row in rows:
        years[row.year] = parse_year(row.data, check_statutory=False)
    return WorkCalendar(list(years.values()))


def _fingerprint(rows: list[CalendarYear]) -> tuple[tuple[int, str], ...]:
    return tuple((row.year, row.loaded_at.isoformat()) for row in rows)


_installed: tuple[tuple[int, str], ...] | None = None


def refresh(db: Database) -> bool:
    """Install the calendar the database holds, if it changed; True when it did."""
    global _installed
    with db.session() as session:
        rows = list(session.scalars(select(CalendarYear).order_by(CalendarYear.year)))
        mark = _fingerprint(rows)
        if mark == _installed:
            return False
        install_calendar(build_calendar(rows))
    _installed = mark
    return True


def forget_installed() -> None:
    """Back to the bundled calendar (tests; a process that opens another database)."""
    global _installed
    _installed = None
    install_calendar(None)


async def keep_fresh(db: Database, every: float = REFRESH_SECONDS) -> None:
    """Every `every` seconds, pick up a year loaded by `portal calendar load` elsewhere."""
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(refresh, db)
        except Exception:  # a passing database hiccup must not end the loop
            log.exception("calendar refresh failed; keeping the calendar in use")


# --- loading a notice -----------------------------------------------------------------


@dataclass
class LoadReport:
    years: list[Arrangement]
    cases_checked: int = 0
    cases_moved: list[tuple[str, date, date]] = field(default_factory=list)
    cases_confirmed: int = 0
    deferred_moved: list[tuple[str, str, str, str]] = field(default_factory=list)
    consultations_moved: list[tuple[str, date, date]] = field(default_factory=list)
    closed_appointments: list[tuple[str, str, date, str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for a in self.years:
            number = f"（{a.notice['number']}）" if a.notice.get("number") else ""
            workdays = len(a.workdays)
            out.append(
                f"已载入 {a.year} 年：{a.notice['title']}{number}，"
                f"放假 {len(a.holidays)} 天，调休上班 {workdays} 天"
            )
        out.append(
            f"办件承诺办结日期：核对预计日期 {self.cases_checked} 件，"
            f"改变 {len(self.cases_moved)} 件，已按正式安排确认 {self.cases_confirmed} 件"
        )
        out += [
            f"  {no}  {old.isoformat()} → {new.isoformat()}" for no, old, new in self.cases_moved
        ]
        out.append(f"容缺补交期限：改变 {len(self.deferred_moved)} 项")
        out += [f"  {no}  {code}  {old} → {new}" for no, code, old, new in self.deferred_moved]
        out.append(f"12345 答复期限：改变 {len(self.consultations_moved)} 件")
        out += [
            f"  {cid}  {old.isoformat()} → {new.isoformat()}"
            for cid, old, new in self.consultations_moved
        ]
        out.append(
            f"落在放假日的预约：{len(self.closed_appointments)} 个（已发消息和短信请申请人改约，预约未自动改动）"
        )
        out += [
            f"  {no}  {day.isoformat()} {period}  {hall}  {appointment_id}"
            for appointment_id, no, day, period, hall in self.closed_appointments
        ]
        return out


def load_years(session: Session, *, years: list[Arrangement], source: str = "") -> LoadReport:
    """Store the notices, use them at once, and recompute every provisional date."""
    now = utcnow()
    for arrangement in years:
        row = session.get(CalendarYear, arrangement.year)
        if row is None:
            row = CalendarYear(year=arrangement.year)
            session.add(row)
        row.data = arrangement.to_data()
        row.source = source[:200]
        row.loaded_at = now
    session.flush()
    rows = list(session.scalars(select(CalendarYear).order_by(CalendarYear.year)))
    install_calendar(build_calendar(rows))
    global _installed
    _installed = None  # the next refresh() re-reads the committed rows
    report = LoadReport(years=years)
    _recompute_cases(session, report)
    _recompute_consultations(session, report, {a.year for a in years})
    _flag_closed_appointments(session, report)
    return report


def case_due_basis(case: Case, item: Item | None) -> dict[str, Any] | None:
    """How the portal computed the case's due date; older rows are read from acceptance."""
    if case.due_basis:
        return case.due_basis
    if case.accepted_at is None:
        return None
    start = case.accepted_at.astimezone(CST).date()
    return {"start": start.isoformat(), "days": item.promised_days if item else 20}


def _recompute_cases(session: Session, report: LoadReport) -> None:
    provisional = select(Case).where(Case.due_date_provisional.is_(True))
    for case in session.scalars(provisional):
        report.cases_checked += 1
        basis = case_due_basis(case, session.get(Item, case.item_code))
        if basis is None:
            continue
        start = date.fromisoformat(basis["start"])
        due = add_working_days(start, int(basis["days"]))
        if due != case.due_date and case.due_date is not None:
            report.cases_moved.append((case.case_no, case.due_date, due))
        case.due_date, case.due_basis = due, basis
        case.due_date_provisional = not span_official(start, due)
        if not case.due_date_provisional:
            report.cases_confirmed += 1
    for case in session.scalars(select(Case).where(Case.commitment.is_not(None))):
        _recompute_deferred(case, report)


def _recompute_deferred(case: Case, report: LoadReport) -> None:
    commitment = case.commitment or {}
    if commitment.get("kind") != "rongque":
        return
    changed = False
    entries = []
    for entry in commitment.get("deferred_materials", []):
        entry = dict(entry)
        basis = entry.get("basis")
        if basis and entry.get("provisional") and not entry.get("supplemented_at"):
            start = date.fromisoformat(basis["start"])
            due = add_working_days(start, int(basis["days"]))
            if due.isoformat() != entry["due_date"]:
                report.deferred_moved.append(
                    (case.case_no, entry["code"], entry["due_date"], due.isoformat())
                )
                entry["due_date"] = due.isoformat()
            entry["provisional"] = not span_official(start, due)
            changed = True
        entries.append(entry)
    if changed:
        # A new dict: the JSON column sees an assignment, not an in-place change.
        case.commitment = {**commitment, "deferred_materials": entries}


def _recompute_consultations(session: Session, report: LoadReport, loaded: set[int]) -> None:
    from portal.consultations.service import due_date_for

    open_ones = select(Consultation).where(Consultation.answered_at.is_(None))
    for consultation in session.scalars(open_ones):
        start = to_cst(consultation.created_at).date()
        # Those whose deadline counts days of a year just loaded (they were provisional,
        # or rested on a notice now replaced).
        if not loaded & set(range(start.year, consultation.due_date.year + 1)):
            continue
        due = due_date_for(consultation.kind, start)
        if due != consultation.due_date:
            report.consultations_moved.append(
                (consultation.consultation_id, consultation.due_date, due)
            )
            consultation.due_date = due


def _flag_closed_appointments(session: Session, report: LoadReport) -> None:
    query = select(Appointment).where(
        Appointment.status == "booked",
        Appointment.date >= today_cst(),
        Appointment.closed_day_notified_at.is_(None),
    )
    for appointment in session.scalars(query):
        if is_working_day(appointment.date):
            continue
        case = session.get(Case, appointment.case_id)
        account = session.get(Account, appointment.account_id)
        hall = session.get(Hall, appointment.hall_code)
        if case is None or account is None:
            continue
        day, period = appointment.date, PERIODS.get(appointment.period, "")
        name = work_calendar().holiday_name(day) or "休息日"
        when = f"{day.month}月{day.day}日{period}"
        link = f"/cases/{case.case_no}/appointments/new?purpose={appointment.purpose}"
        hall_name = hall.name if hall else appointment.hall_code
        tell_account(
            session,
            account_id=account.id,
            case_id=case.id,
            case_no=case.case_no,
            type="appointment.closed_day",
            title="预约日期放假，请改约",
            body=(
                f"根据国务院公布的节假日安排，您预约的{when}（{hall_name}）为{name}放假，"
                f"大厅不办公。预约没有自动改动，请重新选择日期。办件 {case.case_no}。"
            ),
            sms=f"【武进区行政审批局】您预约的{when}为{name}放假，大厅不办公，请登录改约（办件{case.case_no}）。",
            link=link,
        )
        appointment.closed_day_notified_at = utcnow()
        report.closed_appointments.append(
            (appointment.appointment_id, case.case_no, day, period, hall_name)
        )


# --- showing a year -------------------------------------------------------------------


def _spans(days: dict[date, str]) -> list[str]:
    """Consecutive days of one holiday on one line: 春节 2027-02-05 至 2027-02-08（4 天）."""
    by_name: dict[str, list[date]] = {}
    for day, name in sorted(days.items()):
        by_name.setdefault(name, []).append(day)
    lines = []
    for name, group in sorted(by_name.items(), key=lambda kv: kv[1][0]):
        runs: list[list[date]] = [[group[0]]]
        for day in group[1:]:
            if day - runs[-1][-1] == timedelta(days=1):
                runs[-1].append(day)
            else:
                runs.append([day])
        for run in runs:
            first, last = run[0], run[-1]
            if first == last:
                lines.append(f"  {name}  {first.isoformat()}（周{WEEKDAYS[first.weekday()]}）")
            else:
                lines.append(
                    f"  {name}  {first.isoformat()} 至 {last.isoformat()}"
                    f"（周{WEEKDAYS[first.weekday()]}至周{WEEKDAYS[last.weekday()]}，共 {len(run)} 天）"
                )
    return lines


def show_lines(year: int) -> list[str]:
    calendar = work_calendar()
    arrangement = calendar.years.get(year)
    if arrangement is not None:
        notice = arrangement.notice
        number = f"（{notice['number']}）" if notice.get("number") else ""
        published = f"，{notice['published']} 发布" if notice.get("published") else ""
        lines = [f"{year} 年：正式安排 — {notice['title']}{number}{published}", "放假："]
        lines += _spans(arrangement.holidays) or ["  （无）"]
        lines.append("调休上班：")
        lines += _spans(arrangement.workdays) or ["  （无）"]
        return lines
    lines = [
        f"{year} 年：预计（provisional）— 国务院尚未公布（或尚未载入）该年节假日安排；",
        "以下法定节假日按《全国年节及纪念日放假办法》（2024 年修订）计算，周末休息，",
        "调休安排待通知公布后用 `portal calendar load FILE` 载入，届时重新计算所有预计日期。",
        "法定节假日（预计）：",
    ]
    if year >= RULE_SINCE:
        lines += _spans(statutory_holidays(year))
    else:
        lines.append("  （该年早于现行放假办法，不作推算）")
    return lines
