"""The operated calendar: bundled notices, the statutory rule for unpublished years, loading.

Oracles: chinesecalendar (an independent transcription of the notices, 2004–2026),
the statutory rule as the law states it (dates checked by hand below for 2027), and
what a citizen sees through the API and the pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portal.appointments import service as appointments
from portal.appointments.models import Appointment
from portal.calendar import service as calendar_service
from portal.calendar.rules import CalendarFileError, WorkCalendar, bundled, parse_file_data
from portal.calendar.statutory import statutory_holidays
from portal.cases.models import Case
from portal.clock import add_working_days, is_working_day, work_calendar
from portal.consultations.models import Consultation
from portal.exchange.models import OutboxMessage
from portal.notifications.models import Message
from tests.conftest import web_login
from tests.factories import (
    book,
    envelope,
    fill_everything,
    handled_case,
    new_case,
    send,
    status,
    visit_item,
    visit_window,
)

# A 2027 notice as an operator would type it (the real one is not out yet): 元旦 on
# Friday 1 January, with Saturday 2 January worked (调休) — the kind of change a notice
# makes that no rule can foresee.
NOTICE_2027 = {
    "year": 2027,
    "notice": {
        "title": "国务院办公厅关于2027年部分节假日安排的通知",
        "number": "国办发明电〔2026〕99号",
        "published": "2026-11-20",
    },
    "holidays": {
        "2027-01-01": "元旦",
        **{f"2027-02-{d:02d}": "春节" for d in range(5, 12)},
        "2027-04-05": "清明",
        "2027-05-01": "劳动节",
        "2027-05-02": "劳动节",
        "2027-05-03": "劳动节",
        "2027-06-09": "端午",
        "2027-09-15": "中秋",
        **{f"2027-10-{d:02d}": "国庆节" for d in range(1, 8)},
    },
    "workdays": {"2027-01-02": "元旦", "2027-02-20": "春节"},
}


def portal_cli(*args: str, database_url: str, tmp_path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_DATA_DIR": str(tmp_path / "cli"),
    }
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bundled_data_agrees_with_chinesecalendar_on_every_day():
    calendar = WorkCalendar(bundled())
    day, checked = date(2004, 1, 1), 0
    while day.year <= 2026:
        assert calendar.is_working_day(day) == chinese_calendar.is_workday(day), day
        assert calendar.is_official(day.year)
        day += timedelta(days=1)
        checked += 1
    assert checked == 8401  # 23 years, 5 of them leap years
    years = {a.year: a for a in bundled()}
    assert years[2026].notice["title"] == "国务院办公厅关于2026年部分节假日安排的通知"


def test_statutory_days_of_2027_from_the_lunar_calendar():
    # Checked by hand against the lunar calendar: 春节 2027 is Saturday 6 February (除夕
    # the 5th), 清明 5 April, 端午 (五月初五) 9 June, 中秋 (八月十五) 15 September.
    days = statutory_holidays(2027)
    assert sorted(d for d, n in days.items() if n == "春节") == [
        date(2027, 2, 5),
        date(2027, 2, 6),
        date(2027, 2, 7),
        date(2027, 2, 8),
    ]
    assert days[date(2027, 4, 5)] == "清明"
    assert days[date(2027, 6, 9)] == "端午"
    assert days[date(2027, 9, 15)] == "中秋"
    assert len(days) == 13  # 1 + 4 + 1 + 2 + 1 + 1 + 3


@pytest.mark.parametrize("year", [2025, 2026])
def test_the_rule_agrees_with_the_published_notices_since_it_applies(year):
    # The 2024 amendment applies from 2025: every day it closes was closed by the notice.
    for day in statutory_holidays(year):
        assert not chinese_calendar.is_workday(day), day


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(2027, 1, 1), max_value=date(2100, 12, 31)))
def test_no_statutory_holiday_or_weekend_is_ever_a_working_day_in_unpublished_years(day):
    calendar = work_calendar()
    if day in statutory_holidays(day.year) or day.weekday() >= 5:
        assert not calendar.is_working_day(day)
    else:
        assert calendar.is_working_day(day)
    assert not calendar.is_official(day.year)


def test_new_years_day_2027_is_never_working_nor_bookable(client, person, auth, db, monkeypatch):
    assert not is_working_day(date(2027, 1, 1))
    monkeypatch.setattr(appointments, "today_cst", lambda: date(2026, 12, 28))
    item = visit_item(client)
    hall, window = visit_window(db, item)
    case_no = handled_case(db, person["account_id"], item["code"])
    days = client.get(f"/api/v1/cases/{case_no}/appointment-options", headers=auth).json()["days"]
    offered = [d["date"] for d in days]
    assert "2027-01-01" not in offered and "2026-12-31" in offered and "2027-01-04" in offered
    refused = book(client, auth, case_no, hall, window["number"], "2027-01-01")
    assert refused.status_code == 422
    assert "节假日" in refused.json()["error"]["fields"]["date"]
    # Spring Festival 2027 too, although its notice is not out.
    monkeypatch.setattr(appointments, "today_cst", lambda: date(2027, 2, 1))
    offered = [
        d["date"]
        for d in client.get(f"/api/v1/cases/{case_no}/appointment-options", headers=auth).json()[
            "days"
        ]
    ]
    assert not {"2027-02-05", "2027-02-08"} & set(offered) and "2027-02-04" in offered


def test_a_notice_that_forgets_a_statutory_day_is_refused():
    broken = json.loads(json.dumps(NOTICE_2027))
    del broken["holidays"]["2027-01-01"]
    with pytest.raises(CalendarFileError, match="2027-01-01"):
        parse_file_data(broken)
    worked_holiday = json.loads(json.dumps(NOTICE_2027))
    worked_holiday["workdays"]["2027-01-01"] = "元旦"
    with pytest.raises(CalendarFileError):
        parse_file_data(worked_holiday)
    with pytest.raises(CalendarFileError, match="year"):
        parse_file_data({"year": "2027", "notice": {"title": "x"}})


def accepted_case(client, auth, occurred_at: str):
    """A case accepted by the bureau without a due date (the portal computes it)."""
    item = next(
        client.get(f"/api/v1/items/{s['code']}").json()
        for s in client.get("/api/v1/items").json()["items"]
        if s["online"]
    )
    case = new_case(client, auth, item)
    fill_everything(client, auth, item, case["case_no"])
    if item["prereview"]:
        assert (
            client.post(f"/api/v1/cases/{case['case_no']}/prereview", headers=auth).status_code
            == 202
        )
        assert send(client, envelope(case["case_no"], "prereview.passed", {})).status_code == 200
    assert (
        client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth).status_code == 202
    )
    body = envelope(
        case["case_no"], "case.accepted", {"acceptance_no": "SL27"}, occurred_at=occurred_at
    )
    assert send(client, body).status_code == 200
    return item, case["case_no"]


def test_due_date_over_new_year_is_provisional_then_recomputed_on_load(
    client, person, auth, db, tmp_path, settings
):
    item, case_no = accepted_case(client, auth, "2026-12-30T10:00:00+08:00")
    with db.session(write=True) as s, s.begin():
        case = s.scalars(select(Case).where(Case.case_no == case_no)).one()
        # The case as a 5-day item would have it (the basis the portal keeps).
        case.due_basis = {"start": "2026-12-30", "days": 5}
        case.due_date = add_working_days(date(2026, 12, 30), 5)
    before = status(client, auth, case_no)
    assert before["due_date"] == "2027-01-07"  # 31 Dec, then 4-7 Jan: 1 January is off
    assert before["due_date_provisional"] is True
    web_login(client, person)
    assert "（预计" in client.get(f"/cases/{case_no}").text

    notice = tmp_path / "2027.json"
    notice.write_text(json.dumps(NOTICE_2027, ensure_ascii=False), encoding="utf-8")
    result = portal_cli(
        "calendar", "load", str(notice), database_url=settings.database_url, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "已载入 2027 年" in result.stdout and "国办发明电〔2026〕99号" in result.stdout
    assert f"{case_no}  2027-01-07 → 2027-01-06" in result.stdout
    assert "改变 1 件" in result.stdout

    calendar_service.refresh(db)  # what every serving process does within a minute
    after = status(client, auth, case_no)
    assert after["due_date"] == "2027-01-06"  # Saturday 2 January is worked
    assert after["due_date_provisional"] is False
    page = client.get(f"/cases/{case_no}").text
    assert "2027年1月6日" in page and "（预计" not in page.split("承诺办结日期")[1][:80]

    shown = portal_cli(
        "calendar", "show", "2027", database_url=settings.database_url, tmp_path=tmp_path
    )
    assert "正式安排" in shown.stdout and "2027-01-02（周六）" in shown.stdout
    again = portal_cli(
        "calendar", "load", str(notice), database_url=settings.database_url, tmp_path=tmp_path
    )
    assert "改变 0 件" in again.stdout


def test_a_due_date_the_bureau_sent_is_never_recomputed(client, auth, db):
    item = next(
        client.get(f"/api/v1/items/{s['code']}").json()
        for s in client.get("/api/v1/items").json()["items"]
        if s["online"] and not s.get("prereview")
    )
    case = new_case(client, auth, item)
    fill_everything(client, auth, item, case["case_no"])
    client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth)
    body = envelope(
        case["case_no"],
        "case.accepted",
        {"acceptance_no": "SL28", "due_date": "2027-01-08"},
        occurred_at="2026-12-30T10:00:00+08:00",
    )
    assert send(client, body).status_code == 200
    with db.session(write=True) as s, s.begin():
        report = calendar_service.load_years(s, years=parse_file_data(NOTICE_2027))
    assert report.cases_moved == []
    after = status(client, auth, case["case_no"])
    assert after["due_date"] == "2027-01-08" and after["due_date_provisional"] is False


def test_fresh_install_shows_2027_as_provisional(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = portal_cli("calendar", "show", "2027", database_url=url, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "预计" in result.stdout and "provisional" in result.stdout
    assert "2027-02-05 至 2027-02-08" in result.stdout and "元旦  2027-01-01" in result.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('{"year": 2027, "notice": {"title": "x"}, "holidays": {}}', encoding="utf-8")
    refused = portal_cli("calendar", "load", str(broken), database_url=url, tmp_path=tmp_path)
    assert refused.returncode == 2 and "法定节假日 2027-01-01" in refused.stderr


def test_a_booked_day_the_notice_closes_is_flagged_once_and_rebooked(
    client, person, auth, db, monkeypatch
):
    monkeypatch.setattr(appointments, "today_cst", lambda: date(2026, 12, 28))
    item = visit_item(client)
    hall, window = visit_window(db, item)
    case_no = handled_case(db, person["account_id"], item["code"])
    # Booked on a provisional Monday, 4 January 2027; the notice then closes it.
    assert book(client, auth, case_no, hall, window["number"], "2027-01-04").status_code == 201
    closing = json.loads(json.dumps(NOTICE_2027))
    closing["holidays"]["2027-01-04"] = "元旦"
    with db.session(write=True) as s, s.begin():
        report = calendar_service.load_years(s, years=parse_file_data(closing))
    assert [(no, day) for _, no, day, _, _ in report.closed_appointments] == [
        (case_no, date(2027, 1, 4))
    ]
    with db.session() as s:
        booked = s.scalars(select(Appointment)).one()
        assert booked.status == "booked" and booked.date == date(2027, 1, 4)  # never moved
        message = s.scalars(select(Message).where(Message.type == "appointment.closed_day")).one()
        assert f"/cases/{case_no}/appointments/new" in message.link
        sms = [
            m
            for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sms"))
            if "appointment.closed_day" in m.payload
        ]
        assert len(sms) == 1
    with db.session(write=True) as s, s.begin():
        again = calendar_service.load_years(s, years=parse_file_data(closing))
    assert again.closed_appointments == []  # told once, not at every load

    web_login(client, person)
    page = client.get(f"/cases/{case_no}").text
    assert "该日放假" in page and f"/cases/{case_no}/appointments/new?purpose=visit" in page
    rebooked = book(client, auth, case_no, hall, window["number"], "2027-01-05")
    assert rebooked.status_code == 201, rebooked.text
    with db.session() as s:
        rows = {a.date: a.status for a in s.scalars(select(Appointment))}
    assert rows == {date(2027, 1, 4): "cancelled", date(2027, 1, 5): "booked"}


def test_consultation_deadline_over_new_year_is_recomputed(client, auth, db):
    answer = client.post(
        "/api/v1/consultations",
        json={"kind": "complaint", "subject": "窗口态度", "body": "窗口工作人员态度不好，请核实。"},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text
    consultation_id = answer.json()["consultation_id"]
    from datetime import datetime

    from portal.clock import CST

    with db.session(write=True) as s, s.begin():
        c = s.scalars(select(Consultation)).one()
        c.created_at = datetime(2026, 12, 31, 10, tzinfo=CST)
        c.due_date = add_working_days(date(2026, 12, 31), 5)
    assert client.get(f"/api/v1/consultations/{consultation_id}", headers=auth).json()[
        "due_provisional"
    ]
    assert add_working_days(date(2026, 12, 31), 5) == date(2027, 1, 8)
    with db.session(write=True) as s, s.begin():
        report = calendar_service.load_years(s, years=parse_file_data(NOTICE_2027))
    assert [(cid, new) for cid, _, new in report.consultations_moved] == [
        (consultation_id, date(2027, 1, 7))
    ]
    view = client.get(f"/api/v1/consultations/{consultation_id}", headers=auth).json()
    assert view["due_date"] == "2027-01-07" and view["due_provisional"] is False


def test_rongque_deadline_over_new_year_is_provisional_then_recomputed(
    client, person, auth, db, monkeypatch
):
    from portal.cases import service as case_service
    from tests.factories import deferrable_item, ready_for_formal

    monkeypatch.setattr(case_service, "today_cst", lambda: date(2026, 12, 28))
    item = deferrable_item(client)
    deferred = [m["code"] for m in item["materials"] if m["deferrable"] and m["required"]]
    case_no = ready_for_formal(client, auth, item)
    signed = client.post(
        f"/api/v1/cases/{case_no}/submission",
        json={"commitment": {"deferred_materials": deferred, "accepted": True}},
        headers=auth,
    )
    assert signed.status_code == 202, signed.text
    entry = signed.json()["commitment"]["deferred_materials"][0]
    # 10 working days from Monday 28 December: 29-31 Dec, then 4-8 and 11-12 Jan.
    assert entry["due_date"] == "2027-01-12" and entry["due_date_provisional"] is True
    web_login(client, person)
    assert "前补交（预计）" in client.get(f"/cases/{case_no}").text
    with db.session(write=True) as s, s.begin():
        report = calendar_service.load_years(s, years=parse_file_data(NOTICE_2027))
    assert report.deferred_moved == [(case_no, c, "2027-01-12", "2027-01-11") for c in deferred]
    after = status(client, auth, case_no)["commitment"]["deferred_materials"][0]
    assert after["due_date"] == "2027-01-11" and after["due_date_provisional"] is False
