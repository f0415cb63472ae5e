"""我的证照: licences enter the wallet on approval or by registration, age, end, and remind.

Oracles: the contract (citizen-api.md "Licences", bureau-protocol.md `licence.revoked`)
and dates worked out by hand below, not the service's own window arithmetic.
"""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import select

from portal.catalogue.models import Item
from portal.exchange.models import OutboxMessage
from portal.licences import service
from portal.notifications.models import Message
from tests.conftest import bearer, csrf_of, register, web_login
from tests.factories import approved_with_licence, envelope, licence_item, send

# 食品经营许可's rule (《食品经营许可和备案管理办法》): renew 90 to 15 working days before expiry.
FOOD_WINDOW = {"renewal": {"window": {"opens": 90, "closes": 15, "unit": "working_days"}}}


@pytest.fixture
def issued(client, auth, app, db):
    """A licence valid to 2027-06-30, issued through the portal, its item with a window."""
    item = licence_item(client)
    with db.session(write=True) as s, s.begin():
        s.get(Item, item["code"]).applications = FOOD_WINDOW
    case_no = approved_with_licence(client, auth, app, item, valid_to="2027-06-30", number="JY1001")
    return {"item": item, "case_no": case_no}


def wallet(client, auth) -> dict:
    answer = client.get("/api/v1/licences", headers=auth)
    assert answer.status_code == 200, answer.text
    return {lic["number"]: lic for lic in answer.json()["licences"]}


def test_an_approved_licence_is_in_its_holders_wallet_only(client, auth, issued, person):
    mine = wallet(client, auth)["JY1001"]
    assert mine["case_no"] == issued["case_no"] and mine["item_code"] == issued["item"]["code"]
    assert mine["valid_to"] == "2027-06-30" and mine["status"] == "valid"
    assert mine["download_url"] == f"/cases/{issued['case_no']}/licence"
    assert mine["actions"] == []
    # 15 working days before Wednesday 30 June 2027, counted back by hand: 29, 28, 25–21,
    # 18–14, 11, 10 June, then 端午 (Wednesday 9 June, statutory) is skipped: 8 June.
    assert mine["renewal_window"]["closes"] == "2027-06-08"
    other = bearer(client, register(client))
    assert wallet(client, other) == {}
    web_login(client, person)
    page = client.get("/licences").text
    assert "JY1001" in page and "有效" in page and "下载电子证照" in page


def test_status_moves_from_valid_to_expiring_to_expired(client, auth, issued, db):
    with db.session() as s:
        licence = s.scalars(select(service.Licence)).one()
        item = s.get(Item, licence.item_code)
        window = service.renewal_window(item, licence.valid_to)
        assert service.status_of(licence, item, date(2026, 12, 31)) == "valid"
        assert service.status_of(licence, item, window.opens) == "expiring"
        assert service.status_of(licence, item, date(2027, 6, 30)) == "expiring"
        assert service.status_of(licence, item, date(2027, 7, 1)) == "expired"


def test_registering_an_older_licence_and_the_clear_4xx(client, auth, db):
    with db.session() as s:
        code = s.scalars(select(Item.code).where(Item.licence_name != "")).first()
    body = {
        "number": "JY3204120000017",
        "item_code": code,
        "valid_from": "2022-07-01",
        "valid_to": "2027-06-30",
    }
    created = client.post("/api/v1/licences", json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "registered" and created.json()["status"] == "valid"
    again = client.post("/api/v1/licences", json=body, headers=auth)
    assert again.status_code == 409
    other = bearer(client, register(client))
    taken = client.post("/api/v1/licences", json=body, headers=other)
    assert taken.status_code == 409 and "其他账户" in taken.json()["error"]["message"]
    bad = client.post(
        "/api/v1/licences",
        json={
            "number": "x",
            "item_code": "NOPE",
            "valid_from": "2022-13-01",
            "valid_to": "2021-01-01",
        },
        headers=auth,
    )
    assert bad.status_code == 422
    assert set(bad.json()["error"]["fields"]) == {"number", "item_code", "valid_from"}
    backwards = client.post(
        "/api/v1/licences",
        json={**body, "number": "JY3204120000018", "valid_to": "2021-01-01"},
        headers=auth,
    )
    assert backwards.status_code == 422 and "valid_to" in backwards.json()["error"]["fields"]
    assert set(wallet(client, auth)) == {"JY3204120000017"}
    assert wallet(client, other) == {}


def test_registering_on_the_page_keeps_answers_and_orders_errors(client, person, db):
    web_login(client, person)
    page = client.get("/licences")
    token = csrf_of(page.text)
    wrong = client.post(
        "/licences",
        data={"csrf_token": token, "item_code": "", "number": "?", "valid_from": "昨天"},
    )
    assert wrong.status_code == 422
    summary = wrong.text.split('id="error-summary"')[1].split("</ul>")[0]
    assert (
        summary.index("#f-item_code") < summary.index("#f-number") < summary.index("#f-valid_from")
    )
    assert 'value="昨天"' in wrong.text


def test_the_bureau_revokes_a_licence_without_a_case(client, auth, issued, db):
    body = envelope(
        None,
        "licence.revoked",
        {"number": "JY1001", "reason": "经营场所不符合要求", "kind": "revoked"},
    )
    assert send(client, body).status_code == 200
    mine = wallet(client, auth)["JY1001"]
    assert mine["status"] == "revoked" and mine["ended_reason"] == "经营场所不符合要求"
    unknown = envelope(
        None, "licence.revoked", {"number": "NOPE-1", "reason": "x", "kind": "withdrawn"}
    )
    assert send(client, unknown).status_code == 404
    with db.session() as s:
        assert s.scalars(select(Message).where(Message.type == "licence.revoked")).one()


def reminder_count(db, kind: str) -> tuple[int, int]:
    with db.session() as s:
        messages = s.scalars(
            select(Message).where(Message.type == f"licence.reminder.{kind}")
        ).all()
        sms = [
            m
            for m in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sms"))
            if f"licence.reminder.{kind}" in m.payload
        ]
    return len(messages), len(sms)


def test_reminders_go_out_once_each_at_their_moment(client, auth, issued, db):
    with db.session() as s:
        licence = s.scalars(select(service.Licence)).one()
        opens = service.renewal_window(s.get(Item, licence.item_code), licence.valid_to).opens

    def run(day):
        with db.session(write=True) as s, s.begin():
            return service.send_reminders(s, today=day)

    assert run(date(2027, 1, 4)) == []
    assert run(opens) == [("JY1001", "window")]
    assert run(opens) == []  # restarts and later passes send nothing again
    assert reminder_count(db, "window") == (1, 1)
    assert run(date(2027, 5, 31)) == [("JY1001", "30_days")]  # 30 days before 30 June
    assert run(date(2027, 6, 15)) == []
    assert run(date(2027, 7, 1)) == [("JY1001", "expired")]
    assert run(date(2027, 7, 2)) == []
    assert [reminder_count(db, k) for k in ("window", "30_days", "expired")] == [(1, 1)] * 3


def test_a_licence_first_seen_late_gets_only_the_latest_reminder(client, auth, db):
    with db.session() as s:
        code = s.scalars(select(Item.code).where(Item.licence_name != "")).first()
    body = {
        "number": "QS2020001",
        "item_code": code,
        "valid_from": "2020-01-01",
        "valid_to": "2026-12-20",
    }
    assert client.post("/api/v1/licences", json=body, headers=auth).status_code == 201
    with db.session(write=True) as s, s.begin():
        assert service.send_reminders(s, today=date(2026, 12, 10)) == [("QS2020001", "30_days")]
    with db.session(write=True) as s, s.begin():
        assert service.send_reminders(s, today=date(2026, 12, 21)) == [("QS2020001", "expired")]


@pytest.mark.postgres
def test_two_workers_send_each_reminder_exactly_once(client, auth, issued, db):
    with db.session() as s:
        licence = s.scalars(select(service.Licence)).one()
        opens = service.renewal_window(s.get(Item, licence.item_code), licence.valid_to).opens
    barrier = threading.Barrier(2)
    results: list[list] = []

    def worker():
        session = db.session(write=True)
        try:
            with session.begin():
                barrier.wait()
                results.append(service.send_reminders(session, today=opens))
        finally:
            session.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(len(r) for r in results) == [0, 1]
    assert reminder_count(db, "window") == (1, 1)


def test_the_bundled_catalogue_carries_the_sourced_renewal_windows(db):
    with db.session() as s:
        food = s.get(Item, "SC0004").applications["renewal"]["window"]
        water = s.get(Item, "QT0001").applications["renewal"]["window"]
        # 取水许可 valid to Friday 30 July 2027: 条例第二十五条 — apply at the latest 45 days
        # before expiry, so the window closes on 15 June (the opening is the portal's choice).
        window = service.renewal_window(s.get(Item, "QT0001"), date(2027, 7, 30))
    assert (food["opens"], food["closes"], food["unit"]) == (90, 15, "working_days")
    assert (water["closes"], water["unit"]) == (45, "days")
    assert window.closes == date(2027, 6, 15) and window.opens < window.closes
