"""预约: booking hall slots within capacity, working days only, concurrency, events."""

from __future__ import annotations

import json
import threading
from datetime import date

import httpx
from sqlalchemy import func, select

from portal.appointments import service as appointments
from portal.appointments.models import Appointment, SlotCounter
from portal.cases.models import Case
from portal.catalogue.models import Item
from portal.errors import Conflict
from portal.exchange.models import OutboxMessage
from tests.conftest import bearer, csrf_of, register, web_login
from tests.factories import book, first_day, handled_case, visit_item, visit_window
from tests.live import ThreadServer


def no_visit_item(client) -> dict:
    for summary in client.get("/api/v1/items").json()["items"]:
        if summary["visits"] == 0 and summary["online"]:
            return client.get(f"/api/v1/items/{summary['code']}").json()
    raise AssertionError("every item needs a visit")


def fill_slot(db, hall: str, window: int, day: str, period: str, booked: int) -> None:
    with db.session(write=True) as s, s.begin():
        s.merge(
            SlotCounter(
                hall_code=hall,
                window=window,
                date=date.fromisoformat(day),
                period=period,
                booked=booked,
            )
        )


def test_book_see_and_cancel_with_events_to_the_bureau(client, person, auth, db):
    item = visit_item(client)
    case_no = handled_case(db, person["account_id"], item["code"])
    hall, window = visit_window(db, item)
    options = client.get(f"/api/v1/cases/{case_no}/appointment-options", headers=auth).json()
    assert options["purposes"] == ["visit"]
    assert all(w["window"] != 0 for w in options["windows"]["visit"])
    day = options["days"][0]["date"]
    booked = book(client, auth, case_no, hall, window["number"], day, "pm")
    assert booked.status_code == 201, booked.text
    view = booked.json()
    assert view["status"] == "booked" and view["hall"]["code"] == hall
    with db.session() as s:
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "appointment.booked")
        ).one()
    event = json.loads(row.payload)
    assert event["case_no"] == case_no
    assert event["data"] == {
        "appointment_id": view["appointment_id"],
        "purpose": "visit",
        "hall": {"code": hall, "name": view["hall"]["name"]},
        "window": window["number"],
        "date": day,
        "period": "pm",
    }
    slots = client.get(
        f"/api/v1/appointment-slots?hall={hall}&window={window['number']}&date={day}"
    ).json()
    pm = next(p for p in slots["periods"] if p["period"] == "pm")
    assert pm["left"] == pm["capacity"] - 1
    again = book(client, auth, case_no, hall, window["number"], day, "am")
    assert again.status_code == 409 and "已有一个预约" in again.json()["error"]["message"]
    web_login(client, person)
    page = client.get(f"/cases/{case_no}")
    assert "预约到大厅" in page.text and view["hall"]["name"] in page.text
    cancelled = client.post(
        f"/api/v1/appointments/{view['appointment_id']}/cancellation", headers=auth
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    with db.session() as s:
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "appointment.cancelled")
        ).one()
        assert json.loads(row.payload)["data"] == {"appointment_id": view["appointment_id"]}
        counter = s.get(SlotCounter, (hall, window["number"], date.fromisoformat(day), "pm"))
        assert counter.booked == 0
    assert (
        client.post(
            f"/api/v1/appointments/{view['appointment_id']}/cancellation", headers=auth
        ).status_code
        == 409
    )
    assert book(client, auth, case_no, hall, window["number"], day, "am").status_code == 201


def test_booking_beyond_capacity_is_refused(client, person, auth, db):
    item = visit_item(client)
    hall, window = visit_window(db, item)
    case_no = handled_case(db, person["account_id"], item["code"])
    day = first_day(client, auth, case_no)
    capacity = appointments.period_capacity(window["daily_capacity"], "am")
    assert (
        capacity + appointments.period_capacity(window["daily_capacity"], "pm")
        == window["daily_capacity"]
    )
    fill_slot(db, hall, window["number"], day, "am", capacity)
    full = book(client, auth, case_no, hall, window["number"], day, "am")
    assert full.status_code == 409
    assert full.json()["error"]["message"] == appointments.FULL_MESSAGE
    assert book(client, auth, case_no, hall, window["number"], day, "pm").status_code == 201


def test_twenty_concurrent_requests_for_the_last_slot_one_wins(app, client, person, auth, db):
    """Real concurrency: 20 threads against a live server, on SQLite or PostgreSQL."""
    item = visit_item(client)
    hall, window = visit_window(db, item)
    cases = [handled_case(db, person["account_id"], item["code"]) for _ in range(20)]
    day = first_day(client, auth, cases[0])
    capacity = appointments.period_capacity(window["daily_capacity"], "am")
    fill_slot(db, hall, window["number"], day, "am", capacity - 1)
    barrier = threading.Barrier(len(cases))
    answers: list[int] = []
    lock = threading.Lock()

    with ThreadServer(app) as live:

        def attempt(case_no: str) -> None:
            with httpx.Client(base_url=live.url, timeout=60) as http:
                barrier.wait()
                response = http.post(
                    f"/api/v1/cases/{case_no}/appointments",
                    json={
                        "purpose": "visit",
                        "hall": hall,
                        "window": window["number"],
                        "date": day,
                        "period": "am",
                    },
                    headers=auth,
                )
            with lock:
                answers.append(response.status_code)

        threads = [threading.Thread(target=attempt, args=(c,)) for c in cases]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert sorted(answers) == [201] + [409] * 19, answers
    with db.session() as s:
        counter = s.get(SlotCounter, (hall, window["number"], date.fromisoformat(day), "am"))
        assert counter.booked == capacity
        assert s.scalar(select(func.count()).select_from(Appointment)) == 1
        assert (
            s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.event_type == "appointment.booked")
            )
            == 1
        )


def test_twenty_concurrent_transactions_in_the_database_one_wins(client, person, auth, db):
    """The same race one level down: 20 threads, each its own write transaction."""
    item = visit_item(client)
    hall, window = visit_window(db, item)
    cases = [handled_case(db, person["account_id"], item["code"]) for _ in range(20)]
    day = first_day(client, auth, cases[0])
    capacity = appointments.period_capacity(window["daily_capacity"], "pm")
    fill_slot(db, hall, window["number"], day, "pm", capacity - 1)
    barrier = threading.Barrier(len(cases))
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(case_no: str) -> None:
        barrier.wait()
        with db.session(write=True) as s:
            try:
                with s.begin():
                    case = s.scalars(select(Case).where(Case.case_no == case_no)).one()
                    appointments.book_appointment(
                        s,
                        account=case_account(s, case),
                        case=case,
                        item=s.get(Item, case.item_code),
                        purpose="visit",
                        hall_code=hall,
                        window=window["number"],
                        day=day,
                        period="pm",
                    )
                result = "booked"
            except Conflict as exc:
                result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(outcomes) == ["booked"] + ["slot_full"] * 19, outcomes
    with db.session() as s:
        assert (
            s.get(SlotCounter, (hall, window["number"], date.fromisoformat(day), "pm")).booked
            == capacity
        )


def case_account(session, case):
    from portal.accounts.models import Account

    return session.get(Account, case.account_id)


def test_holidays_and_weekends_are_not_bookable_but_adjusted_working_days_are(
    client, person, auth, db, monkeypatch
):
    # Around 国庆 2026: 10/1-10/7 off, Saturday 10/10 is an adjusted working day (调休).
    monkeypatch.setattr(appointments, "today_cst", lambda: date(2026, 9, 28))
    item = visit_item(client)
    hall, window = visit_window(db, item)
    case_no = handled_case(db, person["account_id"], item["code"])
    days = [
        d["date"]
        for d in client.get(f"/api/v1/cases/{case_no}/appointment-options", headers=auth).json()[
            "days"
        ]
    ]
    assert days[:3] == ["2026-09-29", "2026-09-30", "2026-10-08"]
    assert "2026-10-10" in days and "2026-10-11" not in days
    for holiday in ("2026-10-01", "2026-10-03", "2026-10-05", "2026-10-11"):
        refused = book(client, auth, case_no, hall, window["number"], holiday)
        assert refused.status_code == 422, holiday
        assert "节假日或休息日" in refused.json()["error"]["fields"]["date"]
    for wrong, reason in (("2026-09-28", "明天"), ("2026-12-30", "以内"), ("2026-02-30", "格式")):
        answer = book(client, auth, case_no, hall, window["number"], wrong)
        assert answer.status_code == 422 and reason in answer.json()["error"]["fields"]["date"]
    assert book(client, auth, case_no, hall, window["number"], "2026-10-10").status_code == 201


def test_dates_of_an_unpublished_year_are_provisional(client, person, auth, db, monkeypatch):
    monkeypatch.setattr(appointments, "today_cst", lambda: date(2026, 12, 28))
    item = visit_item(client)
    hall, window = visit_window(db, item)
    case_no = handled_case(db, person["account_id"], item["code"])
    days = client.get(f"/api/v1/cases/{case_no}/appointment-options", headers=auth).json()["days"]
    later = [d for d in days if d["date"] >= "2027-01-01"]
    assert later and all(d["provisional"] for d in later)
    assert all(not d["provisional"] for d in days if d["date"] < "2027-01-01")
    answer = book(client, auth, case_no, hall, window["number"], later[0]["date"])
    assert answer.status_code == 201 and answer.json()["provisional"] is True
    web_login(client, person)
    assert "预计" in client.get(f"/cases/{case_no}").text


def test_only_cases_that_need_a_trip_can_book(client, person, auth, db):
    item = visit_item(client)
    hall, window = visit_window(db, item)
    draft = handled_case(db, person["account_id"], item["code"], status="draft")
    day = first_day(client, auth, handled_case(db, person["account_id"], item["code"]))
    assert book(client, auth, draft, hall, window["number"], day).status_code == 409
    online = no_visit_item(client)
    no_trip = handled_case(db, person["account_id"], online["code"])
    assert book(client, auth, no_trip, hall, window["number"], day).status_code == 409
    approved = handled_case(db, person["account_id"], item["code"], status="approved")
    options = client.get(f"/api/v1/cases/{approved}/appointment-options", headers=auth).json()
    assert options["purposes"] == ["pickup"]
    pickup = next(w for w in options["windows"]["pickup"])
    # An approved case comes for its licence, not for handling; and only at a pickup window.
    assert (
        book(client, auth, approved, pickup["hall"]["code"], pickup["window"], day).status_code
        == 409
    )
    wrong_window = book(client, auth, approved, hall, window["number"], day, purpose="pickup")
    assert wrong_window.status_code == 422 and "window" in wrong_window.json()["error"]["fields"]
    ok = book(
        client, auth, approved, pickup["hall"]["code"], pickup["window"], day, purpose="pickup"
    )
    assert ok.status_code == 201, ok.text


def test_odd_input_is_a_clear_4xx_never_a_500(app, client, person, auth, db):
    from fastapi.testclient import TestClient

    quiet = TestClient(app, raise_server_exceptions=False)
    item = visit_item(client)
    case_no = handled_case(db, person["account_id"], item["code"])
    body = {"purpose": "visit", "hall": "WJ\x00", "window": 1, "date": "2026-12-01", "period": "am"}
    for response in (
        quiet.get("/api/v1/appointment-slots?hall=WJ%00&window=1&date=2026-12-01"),
        quiet.get("/api/v1/appointment-slots?hall=WJ-ZWZX&window=x&date=2026-12-01"),
        quiet.post(f"/api/v1/cases/{case_no}/appointments", json=body, headers=auth),
        quiet.post(
            f"/api/v1/cases/{case_no}/appointments", json={**body, "window": 10**9}, headers=auth
        ),
        quiet.post(
            f"/api/v1/cases/{case_no}/appointments",
            json={**body, "hall": "WJ-ZWZX", "date": "下周一"},
            headers=auth,
        ),
        quiet.post("/api/v1/appointments/a%00b/cancellation", headers=auth),
        quiet.get("/api/v1/cases/a%00b/appointment-options", headers=auth),
    ):
        assert 400 <= response.status_code < 500, (response.request.url, response.text)


def test_another_accounts_appointment_is_404_like_a_missing_one(client, person, auth, db):
    item = visit_item(client)
    hall, window = visit_window(db, item)
    case_no = handled_case(db, person["account_id"], item["code"])
    view = book(
        client, auth, case_no, hall, window["number"], first_day(client, auth, case_no)
    ).json()
    stranger = register(client)
    other = bearer(client, stranger)
    stolen = client.post(
        f"/api/v1/appointments/{view['appointment_id']}/cancellation", headers=other
    )
    missing = client.post(
        "/api/v1/appointments/00000000-0000-4000-8000-000000000000/cancellation", headers=other
    )
    assert stolen.status_code == missing.status_code == 404
    assert stolen.json()["error"]["message"] == missing.json()["error"]["message"]
    assert client.get(f"/api/v1/cases/{case_no}/appointments", headers=other).status_code == 404
    web_login(client, stranger)
    assert client.get(f"/appointments/{view['appointment_id']}/cancel").status_code == 404


def test_booking_on_the_pages_with_a_check_page(client, person, auth, db):
    period = "am"
    item = visit_item(client)
    hall, window = visit_window(db, item)
    case_no = handled_case(db, person["account_id"], item["code"])
    day = first_day(client, auth, case_no)
    web_login(client, person)
    case_page = client.get(f"/cases/{case_no}")
    assert f"/cases/{case_no}/appointments/new?purpose=visit" in case_page.text
    form = client.get(f"/cases/{case_no}/appointments/new?purpose=visit")
    assert form.status_code == 200 and 'name="slot"' in form.text
    token = csrf_of(form.text)
    slot = f"{hall}:{window['number']}"
    wrong = client.post(
        f"/cases/{case_no}/appointments/check",
        data={"csrf_token": token, "purpose": "visit", "slot": slot, "date": "2026-10-01"},
    )
    assert wrong.status_code == 422
    assert (
        'id="error-summary"' in wrong.text
        and 'id="f-date-error"' in wrong.text
        and 'id="f-period-error"' in wrong.text
    )
    check = client.post(
        f"/cases/{case_no}/appointments/check",
        data={"csrf_token": token, "purpose": "visit", "slot": slot, "date": day, "period": period},
    )
    assert check.status_code == 200 and "核对预约信息" in check.text and "剩余号源" in check.text
    done = client.post(
        f"/cases/{case_no}/appointments",
        data={"csrf_token": token, "purpose": "visit", "slot": slot, "date": day, "period": period},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = client.get(done.headers["location"])
    assert "已预约" in page.text
    appointment_id = client.get(f"/api/v1/cases/{case_no}/appointments", headers=auth).json()[
        "appointments"
    ][0]["appointment_id"]
    confirm = client.get(f"/appointments/{appointment_id}/cancel")
    assert "取消这个预约" in confirm.text
    gone = client.post(
        f"/appointments/{appointment_id}/cancel",
        data={"csrf_token": csrf_of(confirm.text)},
        follow_redirects=False,
    )
    assert gone.status_code == 303
    assert "已取消" in client.get(f"/cases/{case_no}").text
