"""材料寄递 and what postal users ask of licence delivery, through HTTP.

Oracles come from docs/bureau-protocol.md ("材料寄递") and docs/citizen-api.md, written
out here by hand: the event's fields, the carriers' waybill formats, the answers.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.delivery.models import SavedAddress
from tests.conftest import PASSWORD, bearer, csrf_of, register, web_login
from tests.factories import (
    GOOD_ADDRESS,
    approve,
    bureau,
    envelope,
    fill_everything,
    new_case,
    put_delivery,
    send,
)
from tests.factories import sent_events as events

PICKUP_ADDRESS = {
    "recipient": "王寄件",
    "phone": "13812345678",
    "province": "江苏省",
    "city": "常州市",
    "district": "武进区",
    "detail": "湖塘镇花园街 12 号",
}


def originals_item(client) -> dict:
    """An item whose catalogue entry asks for an original (found through the API)."""
    for summary in client.get("/api/v1/items").json()["items"]:
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        if summary["online"] and any(m["original"] for m in item["materials"]):
            return item
    raise AssertionError("no item asks for an original")


def plain_item(client) -> dict:
    """An item without pre-review whose originals are never asked for."""
    for summary in client.get("/api/v1/items").json()["items"]:
        item = client.get(f"/api/v1/items/{summary['code']}").json()
        originals = any(m["original"] for m in item["materials"])
        if summary["online"] and not summary["prereview"] and not originals and item["express"]:
            return item
    raise AssertionError("no such item")


def formally_submitted(client, auth, item) -> str:
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    if item["prereview"]:
        assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 202
        bureau(client, case_no, "prereview.passed", {})
    response = client.post(f"/api/v1/cases/{case_no}/submission", headers=auth)
    assert response.status_code == 202, response.text
    return case_no


def post(client, auth, case_no, body):
    return client.post(f"/api/v1/cases/{case_no}/originals", json=body, headers=auth)


@pytest.fixture
def case(client, auth):
    item = originals_item(client)
    return item, formally_submitted(client, auth, item)


# --- the API ----------------------------------------------------------------------------


def test_posting_sends_the_event_once_and_the_case_shows_it(client, auth, db, case):
    item, case_no = case
    needed = [{"code": m["code"], "name": m["name"]} for m in item["materials"] if m["original"]]
    before = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["originals"]
    assert before["needed"] == needed and before["method"] is None
    body = {"method": "dropoff", "carrier": "SF", "tracking_no": "sf 1234 5678 90123"}
    response = post(client, auth, case_no, body)
    assert response.status_code == 200, response.text
    view = response.json()["originals"]
    assert view["tracking_no"] == "SF1234567890123" and view["carrier_name"] == "顺丰速运"
    assert view["tracking_url"].endswith("/SF1234567890123")
    assert view["received_at"] is None
    sent = events(db, "originals.posted", case_no)
    assert len(sent) == 1
    assert sent[0]["data"] == {
        "method": "dropoff",
        "carrier": "SF",
        "tracking_no": "SF1234567890123",
        "materials": needed,
    }
    # The same again tells the bureau nothing new; a corrected number does.
    assert post(client, auth, case_no, body).status_code == 200
    assert len(events(db, "originals.posted", case_no)) == 1
    fixed = {"method": "courier_pickup", "carrier": "EMS", "tracking_no": "1012345678901"}
    assert post(client, auth, case_no, {**fixed, "address": PICKUP_ADDRESS}).status_code == 200
    last = events(db, "originals.posted", case_no)[-1]["data"]
    assert last["address"] == PICKUP_ADDRESS and last["carrier"] == "EMS"
    timeline = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["timeline"]
    assert [e["type"] for e in timeline].count("originals.posted") == 2


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"method": "dropoff", "carrier": "SF", "tracking_no": "1012345678901"},
            "tracking_no",
            "顺丰",
        ),
        (
            {"method": "dropoff", "carrier": "EMS", "tracking_no": "EM12345678"},
            "tracking_no",
            "EMS",
        ),
        ({"method": "dropoff", "carrier": "EMS", "tracking_no": ""}, "tracking_no", "请填写"),
        (
            {"method": "dropoff", "carrier": "DHL", "tracking_no": "1234567890"},
            "carrier",
            "快递公司",
        ),
        (
            {"method": "courier_pickup", "carrier": "EMS", "tracking_no": "1012345678901"},
            "address.recipient",
            "寄件人",
        ),
        ({"method": "counter", "hall": "NOPE"}, "hall", "大厅"),
    ],
)
def test_bad_choices_are_422_in_chinese_and_nothing_is_sent(
    client, auth, db, case, body, field, words
):
    _, case_no = case
    response = post(client, auth, case_no, body)
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert field in fields and words in fields[field], fields
    assert events(db, "originals.posted", case_no) == []
    assert (
        client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["originals"]["method"] is None
    )


def test_counter_names_the_hall(client, auth, db, case):
    item, case_no = case
    hall = item["halls"][0]["code"]
    assert post(client, auth, case_no, {"method": "counter", "hall": hall}).status_code == 200
    data = events(db, "originals.posted", case_no)[0]["data"]
    assert data["method"] == "counter" and data["hall"] == hall
    assert "carrier" not in data and "tracking_no" not in data


def test_not_before_the_formal_submission_nor_for_an_item_without_originals(client, auth, db):
    item = originals_item(client)
    draft = new_case(client, auth, item)["case_no"]
    body = {"method": "dropoff", "carrier": "EMS", "tracking_no": "1012345678901"}
    response = post(client, auth, draft, body)
    assert response.status_code == 409 and "正式提交" in response.json()["error"]["message"]
    plain = plain_item(client)
    other = formally_submitted(client, auth, plain)
    response = post(client, auth, other, body)
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_originals"
    assert client.get(f"/api/v1/cases/{other}", headers=auth).json()["originals"] is None
    assert events(db, "originals.posted") == []


def test_another_accounts_case_is_404_like_a_missing_one(client, auth, db, case):
    _, case_no = case
    stranger = bearer(client, register(client))
    body = {"method": "dropoff", "carrier": "EMS", "tracking_no": "1012345678901"}
    theirs = post(client, stranger, case_no, body)
    missing = post(client, stranger, "WJ20990101000001", body)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"] == missing.json()["error"]["message"]
    assert events(db, "originals.posted", case_no) == []


# --- the bureau's receipt ---------------------------------------------------------------


def test_received_is_applied_once_and_locks_the_choice(client, auth, db, case):
    _, case_no = case
    body = {"method": "dropoff", "carrier": "EMS", "tracking_no": "1012345678901"}
    assert post(client, auth, case_no, body).status_code == 200
    event = envelope(
        case_no,
        "originals.received",
        {"received_at": "2026-12-04T09:30:00+08:00", "note": "已核验"},
    )
    assert send(client, event).json() == {"status": "ok"}
    again = send(client, event)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    view = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    assert view["originals"]["received_note"] == "已核验"
    assert view["originals"]["received_at"].startswith("2026-12-04T01:30:00")  # kept in UTC
    assert [e["type"] for e in view["timeline"]].count("originals.received") == 1
    # A second receipt (another event id) does not fit; the citizen cannot change it now.
    second = send(client, envelope(case_no, "originals.received", {}))
    assert second.status_code == 409
    locked = post(client, auth, case_no, {**body, "tracking_no": "1012345678902"})
    assert locked.status_code == 409 and "签收" in locked.json()["error"]["message"]


def test_received_bad_data_unknown_case_and_signature(client, auth, case):
    _, case_no = case
    bad = send(client, envelope(case_no, "originals.received", {"received_at": "昨天"}))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_event"
    too_long = send(client, envelope(case_no, "originals.received", {"note": "长" * 501}))
    assert too_long.status_code == 422
    unknown = send(client, envelope("WJ20990101000001", "originals.received", {}))
    assert unknown.status_code == 404
    unsigned = send(client, envelope(case_no, "originals.received", {}), secret=None)
    assert unsigned.status_code == 401
    view = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["originals"]
    assert view["received_at"] is None


def test_received_without_an_announcement_is_shown_too(client, auth, case):
    """A v1 applicant who brought the originals unannounced: the receipt still shows."""
    _, case_no = case
    assert send(client, envelope(case_no, "originals.received", {})).status_code == 200
    view = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["originals"]
    assert view["method"] is None and view["received_at"] is not None


# --- the pages ----------------------------------------------------------------------------


def test_page_check_then_confirm_and_the_case_page_timeline(client, auth, person, db, case):
    item, case_no = case
    web_login(client, person)
    page = client.get(f"/cases/{case_no}")
    assert "原件寄递" in page.text and f"/cases/{case_no}/originals" in page.text
    form = client.get(f"/cases/{case_no}/originals")
    assert form.status_code == 200 and "顺丰速运" in form.text
    # Where to post them: the item's first hall, with the case number for the waybill.
    assert item["halls"][0]["address"] in form.text and f"办件编号 {case_no}" in form.text
    token = csrf_of(form.text)
    fields = {"csrf_token": token, "method": "dropoff", "carrier": "EMS", "tracking_no": "12345"}
    bad = client.post(f"/cases/{case_no}/originals", data={**fields, "action": "save"})
    assert bad.status_code == 422
    assert 'id="error-summary"' in bad.text and 'href="#f-tracking_no"' in bad.text
    assert 'id="f-tracking_no-error"' in bad.text and "EMS的单号格式不对" in bad.text
    fields["tracking_no"] = "1012345678901"
    check = client.post(f"/cases/{case_no}/originals", data={**fields, "action": "save"})
    assert check.status_code == 200 and "核对原件寄递信息" in check.text
    assert events(db, "originals.posted", case_no) == []  # nothing sent from the check page
    done = client.post(
        f"/cases/{case_no}/originals", data={**fields, "action": "confirm"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert len(events(db, "originals.posted", case_no)) == 1
    shown = client.get(f"/cases/{case_no}").text
    assert "已寄出" in shown and "1012345678901" in shown and "等待审批局签收" in shown
    assert "ems.com.cn" in shown
    bureau(client, case_no, "originals.received", {"note": "原件已核验"})
    shown = client.get(f"/cases/{case_no}").text
    assert "审批局已签收" in shown and "原件已核验" in shown and "等待审批局签收" not in shown
    assert client.get(f"/cases/{case_no}/originals").status_code == 409


def test_page_without_csrf_is_refused(client, auth, person, db, case):
    _, case_no = case
    web_login(client, person)
    body = {"method": "dropoff", "carrier": "EMS", "tracking_no": "1012345678901"}
    response = client.post(f"/cases/{case_no}/originals", data={**body, "action": "confirm"})
    assert response.status_code == 403
    assert events(db, "originals.posted", case_no) == []


# --- licence delivery: address book, postage, tracking link -----------------------------


def test_address_book_offers_earlier_addresses_and_deletes_one(client, auth, person, db):
    item = plain_item(client)
    first = new_case(client, auth, item)["case_no"]
    assert (
        put_delivery(
            client, auth, first, {"method": "express", "address": GOOD_ADDRESS}
        ).status_code
        == 200
    )
    other = {**GOOD_ADDRESS, "detail": "延政中路 1 号", "recipient": "赵收件"}
    second = new_case(client, auth, item)["case_no"]
    assert (
        put_delivery(client, auth, second, {"method": "express", "address": other}).status_code
        == 200
    )
    book = client.get("/api/v1/addresses", headers=auth).json()["addresses"]
    assert [a["detail"] for a in book] == ["延政中路 1 号", "湖塘镇人民中路 88 号"]

    web_login(client, person)
    third = new_case(client, auth, item)["case_no"]
    page = client.get(f"/cases/{third}/delivery")
    assert "寄到以前用过的地址" in page.text
    assert "江苏省常州市武进区延政中路 1 号" in page.text and "湖塘镇人民中路 88 号" in page.text
    assert "13912345678" not in page.text  # masked in the list
    older = next(a for a in book if a["detail"] == "湖塘镇人民中路 88 号")
    reused = client.post(
        f"/cases/{third}/delivery",
        data={"csrf_token": csrf_of(page.text), "action": "reuse", "address_id": str(older["id"])},
        follow_redirects=False,
    )
    assert reused.status_code == 303
    chosen = client.get(f"/api/v1/cases/{third}", headers=auth).json()["delivery"]["address"]
    assert chosen["detail"] == "湖塘镇人民中路 88 号" and chosen["recipient"] == "李经办"

    # Another account cannot see or delete it.
    stranger = bearer(client, register(client))
    assert client.get("/api/v1/addresses", headers=stranger).json()["addresses"] == []
    assert client.delete(f"/api/v1/addresses/{older['id']}", headers=stranger).status_code == 404

    listing = client.get("/account/addresses")
    assert listing.status_code == 200 and "延政中路 1 号" in listing.text
    deleted = client.post(
        f"/account/addresses/{older['id']}/delete",
        data={"csrf_token": csrf_of(listing.text)},
        follow_redirects=False,
    )
    assert deleted.status_code == 303
    assert "已从常用地址中删除" in client.get(deleted.headers["location"]).text
    book = client.get("/api/v1/addresses", headers=auth).json()["addresses"]
    assert [a["detail"] for a in book] == ["延政中路 1 号"]
    # The case that used it keeps its address.
    kept = client.get(f"/api/v1/cases/{third}", headers=auth).json()["delivery"]["address"]
    assert kept["detail"] == "湖塘镇人民中路 88 号"
    assert client.delete(f"/api/v1/addresses/{older['id']}", headers=auth).status_code == 404
    # A page still offering the deleted one: back to the choice, nothing saved.
    fourth = new_case(client, auth, item)["case_no"]
    stale = client.post(
        f"/cases/{fourth}/delivery",
        data={"csrf_token": csrf_of(listing.text), "action": "reuse", "address_id": older["id"]},
    )
    assert stale.status_code == 200 and "所选常用地址已经删除" in stale.text
    assert client.get(f"/api/v1/cases/{fourth}", headers=auth).json()["delivery"] is None


def test_pickup_address_of_originals_joins_the_book(client, auth, case):
    _, case_no = case
    body = {"method": "courier_pickup", "carrier": "EMS", "tracking_no": "EA123456789CN"}
    assert post(client, auth, case_no, {**body, "address": PICKUP_ADDRESS}).status_code == 200
    book = client.get("/api/v1/addresses", headers=auth).json()["addresses"]
    assert [a["detail"] for a in book] == [PICKUP_ADDRESS["detail"]]


def test_postage_is_stated_and_the_tracking_link_shown(client, auth, person):
    item = plain_item(client)
    postage = next(h["postage"] for h in item["halls"] if h["postage"])
    assert "邮费" in postage
    case_no = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, case_no)
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    web_login(client, person)
    page = client.get(f"/cases/{case_no}/delivery")
    assert postage in page.text
    assert (
        put_delivery(
            client, auth, case_no, {"method": "express", "address": GOOD_ADDRESS}
        ).status_code
        == 200
    )
    approve(client, case_no)
    bureau(
        client,
        case_no,
        "licence.shipped",
        {"carrier": "中国邮政EMS", "tracking_no": "EA123456789CN"},
    )
    shown = client.get(f"/cases/{case_no}").text
    assert "EA123456789CN" in shown
    delivery = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["delivery"]
    assert delivery["tracking_url"] == "https://www.ems.com.cn/queryList?mailNum=EA123456789CN"
    assert 'href="https://www.ems.com.cn/queryList?mailNum=EA123456789CN"' in shown
    # A carrier the portal does not know: the number, and no link to guess.
    other = new_case(client, auth, item)["case_no"]
    fill_everything(client, auth, item, other)
    assert client.post(f"/api/v1/cases/{other}/submission", headers=auth).status_code == 202
    approve(client, other)
    bureau(client, other, "licence.shipped", {"carrier": "某某快运", "tracking_no": "X123456"})
    shown = client.get(f"/cases/{other}").text
    assert "X123456" in shown and "官网查询物流" not in shown
    assert (
        client.get(f"/api/v1/cases/{other}", headers=auth).json()["delivery"]["tracking_url"]
        is None
    )


def test_each_carriers_waybill_format_is_accepted(client, auth, db, case):
    """The formats of docs/citizen-api.md, one valid number each (written out by hand)."""
    _, case_no = case
    valid = [
        ("EMS", "1012345678901"),
        ("EMS", "ea123456789cn"),
        ("CNPOST", "9812 3456 7890 1"),
        ("SF", "SF1234567890123"),
        ("JD", "JDVA12345678901"),
    ]
    for carrier, number in valid:
        body = {"method": "dropoff", "carrier": carrier, "tracking_no": number}
        response = post(client, auth, case_no, body)
        assert response.status_code == 200, (carrier, number, response.text)
        sent = events(db, "originals.posted", case_no)[-1]["data"]
        assert sent["carrier"] == carrier
        assert sent["tracking_no"] == number.replace(" ", "").upper()
    assert len(events(db, "originals.posted", case_no)) == len(valid)
    wrong = {"method": "dropoff", "carrier": "JD", "tracking_no": "SF1234567890123"}
    assert post(client, auth, case_no, wrong).status_code == 422


def test_the_address_book_is_in_the_export_and_goes_with_the_closed_account(client, auth, db):
    """PIPL: the book is personal data the account alone needed (its cases keep copies)."""
    item = plain_item(client)
    case_no = new_case(client, auth, item)["case_no"]
    express = {"method": "express", "address": GOOD_ADDRESS}
    assert put_delivery(client, auth, case_no, express).status_code == 200
    exported = client.get("/api/v1/me/export", headers=auth).json()
    assert [a["detail"] for a in exported["addresses"]] == [GOOD_ADDRESS["detail"]]
    # A draft's choice is deleted with the draft; the book row with the account's closing.
    closed = client.post("/api/v1/me/close", json={"password": PASSWORD}, headers=auth)
    assert closed.status_code == 204
    with db.session() as session:
        assert session.scalars(select(SavedAddress)).all() == []
