"""证照快递 / 窗口领取 through HTTP: divisions, address rules, when the choice may change."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import bearer, csrf_of, pick_item, register, web_login
from tests.factories import (
    GOOD_ADDRESS,
    accept,
    approve,
    bureau,
    fill_everything,
    new_case,
    put_delivery,
    submitted_case,
)
from tests.factories import sent_events as events

# --- helpers shared by the issue-4 test files ------------------------------------------


# --- divisions ----------------------------------------------------------------------------


def test_divisions_come_from_gbt2260_with_municipalities_and_direct_counties(client):
    provinces = client.get("/api/v1/divisions")
    assert provinces.status_code == 200
    assert "max-age" in provinces.headers["cache-control"]
    names = {d["name"]: d["code"] for d in provinces.json()["divisions"]}
    assert names["江苏省"] == "320000" and names["北京市"] == "110000"
    assert len(names) == 31  # 台湾省, 香港, 澳门 have no divisions below them in the data
    cities = {
        d["name"]: d["code"] for d in client.get("/api/v1/divisions/320000").json()["divisions"]
    }
    assert cities["常州市"] == "320400"
    districts = client.get("/api/v1/divisions/320400").json()["divisions"]
    assert {"code": "320412", "name": "武进区"} in districts
    # Municipalities: 市辖区 (and 县 for 重庆), as GB/T 2260 names that level.
    assert client.get("/api/v1/divisions/110000").json()["divisions"] == [
        {"code": "110100", "name": "市辖区"}
    ]
    assert [d["name"] for d in client.get("/api/v1/divisions/500000").json()["divisions"]] == [
        "市辖区",
        "县",
    ]
    assert {"code": "110101", "name": "东城区"} in client.get("/api/v1/divisions/110100").json()[
        "divisions"
    ]
    # 省直辖县级行政区划, and a city without districts offering itself.
    henan = client.get("/api/v1/divisions/410000").json()["divisions"]
    assert {"code": "419000", "name": "省直辖县级行政区划"} in henan
    assert client.get("/api/v1/divisions/419000").json()["divisions"] == [
        {"code": "419001", "name": "济源市"}
    ]
    assert client.get("/api/v1/divisions/441900").json()["divisions"] == [
        {"code": "441900", "name": "东莞市"}
    ]
    for bad in ("999999", "abc", "320412", "710000"):
        response = client.get(f"/api/v1/divisions/{bad}")
        assert response.status_code == 404 and response.json()["error"]["message"]


# --- the API --------------------------------------------------------------------------------


def test_address_is_validated_with_chinese_reasons(client, auth, db):
    item = pick_item(client, prereview=False, express=True)
    case_no = new_case(client, auth, item)["case_no"]
    wrong_district = put_delivery(
        client,
        auth,
        case_no,
        {"method": "express", "address": {**GOOD_ADDRESS, "district": "海淀区"}},
    )
    assert wrong_district.status_code == 422
    fields = wrong_district.json()["error"]["fields"]
    assert set(fields) == {"address.district"}
    assert "常州市" in fields["address.district"]
    bad_phone = put_delivery(
        client, auth, case_no, {"method": "express", "address": {**GOOD_ADDRESS, "phone": "1234"}}
    )
    assert bad_phone.status_code == 422
    assert "11 位" in bad_phone.json()["error"]["fields"]["address.phone"]
    wrong_city = put_delivery(
        client, auth, case_no, {"method": "express", "address": {**GOOD_ADDRESS, "city": "杭州市"}}
    )
    assert "江苏省" in wrong_city.json()["error"]["fields"]["address.city"]
    empty = put_delivery(client, auth, case_no, {"method": "express"})
    assert empty.status_code == 422
    assert set(empty.json()["error"]["fields"]) == {
        "address.recipient",
        "address.phone",
        "address.province",
        "address.detail",
    }
    assert all(re.search(r"[\u4e00-\u9fff]", m) for m in empty.json()["error"]["fields"].values())
    odd = put_delivery(
        client,
        auth,
        case_no,
        {"method": "express", "address": {**GOOD_ADDRESS, "postcode": "12", "detail": "1号"}},
    )
    assert set(odd.json()["error"]["fields"]) == {"address.postcode", "address.detail"}
    for body in ({"method": "drone"}, {"method": "express", "address": "江苏"}, [1, 2]):
        response = client.put(f"/api/v1/cases/{case_no}/delivery", json=body, headers=auth)
        assert response.status_code == 422
    assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["delivery"] is None

    # A good one, with spaces and +86 as people type numbers; codes work as well as names.
    ok = put_delivery(
        client,
        auth,
        case_no,
        {
            "method": "express",
            "address": {**GOOD_ADDRESS, "phone": "+86 139-1234-5678", "district": "320412"},
        },
    )
    assert ok.status_code == 200, ok.text
    delivery = ok.json()["delivery"]
    assert delivery["method"] == "express"
    assert delivery["address"]["phone"] == "13912345678"
    assert delivery["address"]["district"] == "武进区"
    # A draft: the bureau hears of the choice inside case.submitted, not on its own.
    assert events(db, "delivery.selected") == []
    fill_everything(client, auth, item, case_no)
    assert client.post(f"/api/v1/cases/{case_no}/submission", headers=auth).status_code == 202
    [submitted] = events(db, "case.submitted", case_no)
    assert submitted["data"]["delivery"] == {
        "method": "express",
        "address": {**GOOD_ADDRESS, "phone": "13912345678"},
    }
    assert events(db, "delivery.selected") == []


def test_municipality_and_city_without_districts(client, auth):
    item = pick_item(client, prereview=False, express=True)
    case_no = new_case(client, auth, item)["case_no"]
    beijing = {**GOOD_ADDRESS, "province": "北京市", "city": "市辖区", "district": "东城区"}
    response = put_delivery(client, auth, case_no, {"method": "express", "address": beijing})
    assert response.status_code == 200, response.text
    # 北京市 written again as the city is understood as its 市辖区.
    again = {**beijing, "city": "北京市", "district": "西城区"}
    response = put_delivery(client, auth, case_no, {"method": "express", "address": again})
    assert response.json()["delivery"]["address"]["city"] == "市辖区"
    chongqing = {**GOOD_ADDRESS, "province": "重庆市", "city": "市辖区", "district": "城口县"}
    response = put_delivery(client, auth, case_no, {"method": "express", "address": chongqing})
    assert "address.district" in response.json()["error"]["fields"]
    chongqing["city"] = "县"
    assert (
        put_delivery(client, auth, case_no, {"method": "express", "address": chongqing}).status_code
        == 200
    )
    dongguan = {**GOOD_ADDRESS, "province": "广东省", "city": "东莞市", "district": "东莞市"}
    assert (
        put_delivery(client, auth, case_no, {"method": "express", "address": dongguan}).status_code
        == 200
    )


def test_after_submission_each_change_is_sent_once(client, auth, db):
    item, case_no = submitted_case(client, auth)
    hall = item["halls"][0]["code"]
    bad_hall = put_delivery(client, auth, case_no, {"method": "pickup", "hall": "NO-SUCH-HALL"})
    assert bad_hall.status_code == 422 and "hall" in bad_hall.json()["error"]["fields"]
    no_hall = put_delivery(client, auth, case_no, {"method": "pickup"})
    assert no_hall.status_code == 422
    pickup = put_delivery(client, auth, case_no, {"method": "pickup", "hall": hall})
    assert pickup.status_code == 200
    assert pickup.json()["delivery"]["hall"] == hall
    # The same choice again changes nothing and sends nothing.
    assert (
        put_delivery(client, auth, case_no, {"method": "pickup", "hall": hall}).status_code == 200
    )
    express = put_delivery(client, auth, case_no, {"method": "express", "address": GOOD_ADDRESS})
    assert express.status_code == 200
    sent = events(db, "delivery.selected", case_no)
    assert [e["data"] for e in sent] == [
        {"method": "pickup", "hall": hall},
        {"method": "express", "address": GOOD_ADDRESS},
    ]
    timeline = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["timeline"]
    entries = [e for e in timeline if e["type"] == "delivery.selected"]
    assert len(entries) == 2
    assert "13912345678" not in json.dumps(entries, ensure_ascii=False)


def test_express_refused_for_an_item_without_it(client, auth):
    try:
        item = pick_item(client, prereview=False, express=False)
    except AssertionError:
        reason = "this catalogue (PORTAL_TEST_CATALOGUE) has no item without express"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    case_no = new_case(client, auth, item)["case_no"]
    response = put_delivery(client, auth, case_no, {"method": "express", "address": GOOD_ADDRESS})
    assert response.status_code == 409
    assert "快递" in response.json()["error"]["message"]
    hall = item["halls"][0]["code"]
    assert (
        put_delivery(client, auth, case_no, {"method": "pickup", "hall": hall}).status_code == 200
    )


def test_no_change_once_shipped_or_ready(client, auth, person):
    item, case_no = submitted_case(client, auth)
    assert (
        put_delivery(
            client, auth, case_no, {"method": "express", "address": GOOD_ADDRESS}
        ).status_code
        == 200
    )
    approve(client, case_no)
    # Still free to change after approval, until the bureau acts.
    hall = item["halls"][0]["code"]
    assert (
        put_delivery(client, auth, case_no, {"method": "pickup", "hall": hall}).status_code == 200
    )
    assert (
        put_delivery(
            client, auth, case_no, {"method": "express", "address": GOOD_ADDRESS}
        ).status_code
        == 200
    )
    bureau(client, case_no, "licence.shipped", {"carrier": "EMS", "tracking_no": "EM123456789CN"})
    response = put_delivery(client, auth, case_no, {"method": "pickup", "hall": hall})
    assert response.status_code == 409
    assert "已经寄出" in response.json()["error"]["message"]
    view = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["delivery"]
    assert view["tracking_no"] == "EM123456789CN" and view["method"] == "express"
    # The page says where it is, and refuses the form as well.
    web_login(client, person)
    page = client.get(f"/cases/{case_no}")
    assert "EM123456789CN" in page.text and "修改领取方式" not in page.text
    form_page = client.get(f"/cases/{case_no}/delivery")
    assert form_page.status_code == 409 and "已经寄出" in form_page.text
    posted = client.post(
        f"/cases/{case_no}/delivery",
        data={"csrf_token": csrf_of(page.text), "method": "pickup", "hall": hall},
    )
    assert posted.status_code == 409
    bureau(client, case_no, "licence.delivered", {"signed_at": "2026-11-29T15:20:00+08:00"})
    assert "签收" in client.get(f"/cases/{case_no}").text


def test_ready_for_pickup_shows_hall_address_and_code(client, auth, person):
    item, case_no = submitted_case(client, auth)
    hall = item["halls"][0]
    assert (
        put_delivery(client, auth, case_no, {"method": "pickup", "hall": hall["code"]}).status_code
        == 200
    )
    approve(client, case_no)
    bureau(
        client, case_no, "licence.ready_for_pickup", {"hall": hall["code"], "pickup_code": "482913"}
    )
    assert (
        put_delivery(client, auth, case_no, {"method": "pickup", "hall": hall["code"]}).status_code
        == 409
    )
    web_login(client, person)
    page = client.get(f"/cases/{case_no}").text
    assert "482913" in page and hall["name"] in page and hall["address"] in page


def test_denied_case_has_no_licence_to_deliver(client, auth):
    _, case_no = submitted_case(client, auth)
    accept(client, case_no)
    bureau(client, case_no, "case.denied", {"reason": "不符合条件", "remedy": "可申请复议"})
    response = put_delivery(client, auth, case_no, {"method": "express", "address": GOOD_ADDRESS})
    assert response.status_code == 409


def test_another_accounts_case_is_404(client, auth):
    _, case_no = submitted_case(client, auth)
    stranger = bearer(client, register(client, name="陌生人"))
    theirs = put_delivery(client, stranger, case_no, {"method": "express", "address": GOOD_ADDRESS})
    missing = put_delivery(
        client, stranger, "WJ20000101000001", {"method": "express", "address": GOOD_ADDRESS}
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert (
        client.put(f"/api/v1/cases/{case_no}/delivery", json={"method": "pickup"}).status_code
        == 401
    )


# --- the page, without JavaScript -------------------------------------------------------------


def test_page_cascades_on_the_server_and_saves(client, auth, person, db):
    item = pick_item(client, prereview=False, express=True)
    case_no = new_case(client, auth, item)["case_no"]
    web_login(client, person)
    page = client.get(f"/cases/{case_no}/delivery")
    assert page.status_code == 200
    assert "下一步：选择城市" in page.text and 'value="320000"' in page.text
    token = csrf_of(page.text)
    base = {"csrf_token": token, "method": "express"}
    step = client.post(
        f"/cases/{case_no}/delivery",
        data={
            **base,
            "action": "cascade",
            "address.province": "320000",
            "address.recipient": "李经办",
        },
    )
    assert step.status_code == 200
    assert '<option value="320400">常州市</option>' in step.text
    assert 'value="李经办"' in step.text  # what was typed stays
    step = client.post(
        f"/cases/{case_no}/delivery",
        data={**base, "action": "cascade", "address.province": "320000", "address.city": "320400"},
    )
    assert '<option value="320412">武进区</option>' in step.text
    # A province changed under a chosen city drops the city.
    step = client.post(
        f"/cases/{case_no}/delivery",
        data={**base, "action": "cascade", "address.province": "110000", "address.city": "320400"},
    )
    assert '<option value="110100">市辖区</option>' in step.text
    assert '<option value="320400"' not in step.text
    assert client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["delivery"] is None

    fields = {
        **base,
        "action": "save",
        "address.province": "320000",
        "address.city": "320400",
        "address.district": "110101",
        "address.detail": "湖塘镇人民中路 88 号",
        "address.recipient": "李经办",
        "address.phone": "139123",
    }
    bad = client.post(f"/cases/{case_no}/delivery", data=fields)
    assert bad.status_code == 422
    assert 'id="error-summary"' in bad.text
    assert 'href="#f-address.phone"' in bad.text and 'id="f-address.phone-error"' in bad.text
    assert "手机号码应为 11 位数字" in bad.text
    assert "请选择区县" in bad.text  # the district that did not fit was dropped, and asked again
    fields.update({"address.district": "320412", "address.phone": "13912345678"})
    saved = client.post(f"/cases/{case_no}/delivery", data=fields, follow_redirects=False)
    assert saved.status_code == 303
    view = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()["delivery"]
    assert view["address"] == {**GOOD_ADDRESS, "postcode": None}
    case_page = client.get(f"/cases/{case_no}").text
    assert "已选择" in case_page
    review = client.get(f"/cases/{case_no}/review").text
    assert "江苏省常州市武进区湖塘镇人民中路 88 号" in review


def test_pickup_on_the_page_and_last_address_offered_again(client, auth, person, db):
    item, first = submitted_case(client, auth)
    web_login(client, person)
    page = client.get(f"/cases/{first}/delivery")
    hall = item["halls"][0]["code"]
    response = client.post(
        f"/cases/{first}/delivery",
        data={"csrf_token": csrf_of(page.text), "method": "pickup", "hall": "", "action": "save"},
    )
    assert response.status_code == 422 and "请选择领取证照的大厅" in response.text
    # The case is with the bureau: a check page first, and nothing sent from it.
    token = csrf_of(page.text)
    choice = {"csrf_token": token, "method": "pickup", "hall": hall}
    check = client.post(f"/cases/{first}/delivery", data={**choice, "action": "save"})
    assert check.status_code == 200 and "核对领取方式" in check.text
    assert "确认并通知审批局" in check.text and "窗口领取" in check.text
    assert events(db, "delivery.selected", first) == []
    back = client.post(f"/cases/{first}/delivery", data={**choice, "action": "edit"})
    assert back.status_code == 200 and f'value="{hall}" checked' in back.text
    client.post(f"/cases/{first}/delivery", data={**choice, "action": "confirm"})
    assert events(db, "delivery.selected", first)[-1]["data"] == {"method": "pickup", "hall": hall}
    assert (
        put_delivery(
            client, auth, first, {"method": "express", "address": GOOD_ADDRESS}
        ).status_code
        == 200
    )

    second = new_case(client, auth, item)["case_no"]
    page = client.get(f"/cases/{second}/delivery")
    assert "寄到上次的地址" in page.text
    assert "江苏省常州市武进区湖塘镇人民中路 88 号" in page.text
    assert "139****5678" in page.text and "13912345678" not in page.text
    reused = client.post(
        f"/cases/{second}/delivery",
        data={"csrf_token": csrf_of(page.text), "action": "reuse"},
        follow_redirects=False,
    )
    assert reused.status_code == 303
    view = client.get(f"/api/v1/cases/{second}", headers=auth).json()["delivery"]
    assert view["address"]["district"] == "武进区" and view["address"]["phone"] == "13912345678"
