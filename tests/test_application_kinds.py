"""延续 / 变更 / 注销 / 补办 applied for from the wallet (citizen-api.md "Licences";
bureau-protocol.md "Licences over their life"), through HTTP, the bureau's side played
with signed callbacks.

Expected values come from the contract and the rules, not from the code: 食品经营许可
renews 90 to 15 working days before expiry (《食品经营许可和备案管理办法》), so a day 60
calendar days before expiry is inside (at least 40 working days), and a day three
years before is outside.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.accounts.models import Authorisation
from portal.cases.models import Case
from portal.exchange.models import OutboxMessage
from tests.conftest import bearer, csrf_of, register, web_login
from tests.factories import (
    FOOD,
    apply,
    envelope,
    fill_everything,
    issue_food_licence,
    licence_data,
    new_case,
    send,
    true_today,
    upload,
)
from tests.factories import approve_licence as approve


@pytest.fixture(autouse=True)
def true_date():
    yield
    clock.shift_dates(0)  # the test clock back to the true date, whatever a test did


def move_today_to(day: date) -> None:
    clock.shift_dates((day - true_today()).days)


def wallet(client, auth) -> dict:
    answer = client.get("/api/v1/licences", headers=auth)
    assert answer.status_code == 200, answer.text
    return {lic["number"]: lic for lic in answer.json()["licences"]}


def case_count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Case))


def submitted_data(db, case_no: str) -> dict:
    with db.session() as s:
        message = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == "case.submitted")
            .where(OutboxMessage.ordering_key == case_no)
            .order_by(OutboxMessage.id.desc())
        ).first()
    assert message is not None, "no case.submitted queued"
    return json.loads(message.payload)["data"]


def file_formally(client, auth, case: dict, extra_form: dict) -> None:
    """Complete the kind's own form and materials, then submit (no 预审 for these kinds)."""
    case_no = case["case_no"]
    answer = client.patch(f"/api/v1/cases/{case_no}", json={"form": extra_form}, headers=auth)
    assert answer.status_code == 200, answer.text
    for m in case["materials"]:
        if m["required"]:
            assert upload(client, auth, case_no, m["code"]).status_code == 201
    answer = client.post(f"/api/v1/cases/{case_no}/submission", headers=auth)
    assert answer.status_code == 202, answer.text


@pytest.fixture
def food(client, auth):
    valid_to = true_today() + timedelta(days=3 * 365)
    issued = issue_food_licence(client, auth, "JY13204120000017", valid_to)
    return issued | {"number": "JY13204120000017", "valid_to": valid_to}


def test_renewal_opens_in_its_window_only_and_is_filled_from_the_licence(client, auth, food, db):
    number = food["number"]
    mine = wallet(client, auth)[number]
    # Years before expiry: change, cancellation and reissue are open, renewal is not.
    assert mine["actions"] == ["change", "cancellation", "reissue"]
    before = case_count(db)
    refused = apply(client, auth, number, "renewal")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "application_not_open"
    assert "延续申请期" in refused.json()["error"]["message"]
    assert case_count(db) == before  # nothing created

    move_today_to(food["valid_to"] - timedelta(days=60))
    assert "renewal" in wallet(client, auth)[number]["actions"]
    answer = apply(client, auth, number, "renewal")
    assert answer.status_code == 201, answer.text
    case = answer.json()
    assert case["status"] == "draft"
    assert case["item_code"] == FOOD and case["item_name"] == "食品经营许可（延续）"
    assert case["application"]["kind"] == "renewal"
    assert case["application"]["licence"]["number"] == number
    # The form comes filled from the case the licence was issued on.
    for name in ("business_name", "legal_rep_name", "business_address", "contact_phone"):
        assert case["form"][name] == food["form"][name]
    # Its own materials: the renewal's application form, not the new one's floor plan.
    names = [m["name"] for m in case["materials"]]
    assert "食品经营许可延续申请书" in names and "经营场所平面布局图" not in names
    # One tap again: the same draft, not a second one.
    again = apply(client, auth, number, "renewal")
    assert again.status_code == 200 and again.json()["case_no"] == case["case_no"]
    assert case_count(db) == before + 1


def test_renewal_is_sent_with_its_application_and_replaces_the_licence(client, auth, food, db):
    number = food["number"]
    move_today_to(food["valid_to"] - timedelta(days=60))
    case = apply(client, auth, number, "renewal").json()
    file_formally(client, auth, case, {"conditions_changed": "未发生变化"})
    data = submitted_data(db, case["case_no"])
    assert data["application"]["kind"] == "renewal"
    assert data["application"]["licence"]["number"] == number
    assert data["application"]["licence"]["name"] == "食品经营许可证"
    assert data["stage"] == "formal"
    # While it is being decided, no second application about the licence.
    assert wallet(client, auth)[number]["pending"]["case_no"] == case["case_no"]
    pending = apply(client, auth, number, "change")
    assert pending.status_code == 409 and case["case_no"] in pending.json()["error"]["message"]

    send(client, envelope(case["case_no"], "case.accepted", {"acceptance_no": "SL-R1"}))
    renewed_to = food["valid_to"] + timedelta(days=5 * 365)
    approve(client, case["case_no"], number, renewed_to)
    licences = wallet(client, auth)
    assert list(licences) == [number]  # replaced, not added beside the old one
    assert licences[number]["valid_to"] == renewed_to.isoformat()
    assert licences[number]["case_no"] == case["case_no"]
    assert licences[number]["status"] == "valid"


def test_cancellation_cancels_and_a_cancelled_licence_cannot_change(client, auth, food, db):
    number = food["number"]
    case = apply(client, auth, number, "cancellation").json()
    assert case["item_name"] == "食品经营许可（注销）"
    file_formally(client, auth, case, {"cancel_reason": "终止食品经营"})
    assert submitted_data(db, case["case_no"])["application"]["kind"] == "cancellation"
    send(client, envelope(case["case_no"], "case.accepted", {"acceptance_no": "SL-C1"}))
    # Contract: a cancellation's approval carries no licence; one that does is refused.
    with_licence = {"decision_no": "D-X", "licence": licence_data("NEW-1", food["valid_to"])}
    refused = send(client, envelope(case["case_no"], "case.approved", with_licence))
    assert refused.status_code == 422
    ok = send(client, envelope(case["case_no"], "case.approved", {"decision_no": "D-C1"}))
    assert ok.status_code == 200, ok.text
    mine = wallet(client, auth)[number]
    assert mine["status"] == "cancelled" and mine["actions"] == []
    # No licence comes of it, so there is no way to have one delivered.
    hall = {"method": "pickup", "hall": food["item"]["halls"][0]["code"]}
    chosen = client.put(f"/api/v1/cases/{case['case_no']}/delivery", json=hall, headers=auth)
    assert chosen.status_code == 409 and chosen.json()["error"]["code"] == "no_licence"
    assert client.get(f"/api/v1/cases/{case['case_no']}", headers=auth).json()["status"] == (
        "approved"
    )
    before = case_count(db)
    change = apply(client, auth, number, "change")
    assert change.status_code == 409 and "注销" in change.json()["error"]["message"]
    assert case_count(db) == before


def test_a_change_under_a_new_number_retires_the_old_one(client, auth, food):
    case = apply(client, auth, food["number"], "change").json()
    assert case["item_name"] == "食品经营许可（变更）"
    change = {"change_item": "经营者名称", "change_from": "武进老字号", "change_to": "武进新字号"}
    file_formally(client, auth, case, change)
    send(client, envelope(case["case_no"], "case.accepted", {"acceptance_no": "SL-CH"}))
    approve(client, case["case_no"], "JY13204120000099", food["valid_to"])
    assert list(wallet(client, auth)) == ["JY13204120000099"]


def test_a_change_asks_what_changes_old_and_new(client, auth, food):
    case = apply(client, auth, food["number"], "change").json()
    answer = client.post(f"/api/v1/cases/{case['case_no']}/submission", headers=auth)
    assert answer.status_code == 422
    fields = answer.json()["error"]["fields"]
    assert {"form.change_item", "form.change_from", "form.change_to"} <= set(fields)


def test_someone_elses_licence_is_not_found_and_bad_kinds_are_refused(client, auth, food, db):
    other = bearer(client, register(client))
    before = case_count(db)
    theirs = apply(client, other, food["number"], "change")
    unknown = apply(client, other, "JY0000NOSUCH", "change")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()  # the same answer: nothing leaks
    assert apply(client, auth, food["number"], "transfer").status_code == 422
    assert client.post(f"/api/v1/licences/{food['number']}/applications").status_code == 401
    assert case_count(db) == before


def test_expired_licence_offers_no_change_but_can_be_cancelled(client, auth, food):
    move_today_to(food["valid_to"] + timedelta(days=1))
    assert wallet(client, auth)[food["number"]]["actions"] == ["cancellation"]
    refused = apply(client, auth, food["number"], "reissue")
    assert refused.status_code == 409 and "到期" in refused.json()["error"]["message"]


def test_one_tap_from_the_wallet_page_lands_on_the_filled_form(client, auth, person, food):
    web_login(client, person)
    page = client.get("/licences").text
    assert f'action="/licences/{food["number"]}/applications"' in page
    assert "申请变更" in page and "申请延续" not in page  # only what is open now
    token = csrf_of(page)
    forged = client.post(
        f"/licences/{food['number']}/applications", data={"kind": "change"}, follow_redirects=False
    )
    assert forged.status_code in (400, 403)
    closed = client.post(
        f"/licences/{food['number']}/applications",
        data={"kind": "renewal", "csrf_token": token},
        follow_redirects=False,
    )
    assert closed.status_code == 409 and "延续申请期" in closed.text
    tapped = client.post(
        f"/licences/{food['number']}/applications",
        data={"kind": "change", "csrf_token": token},
        follow_redirects=False,
    )
    assert tapped.status_code == 303
    form_page = client.get(tapped.headers["location"]).text
    assert "食品经营许可（变更）" in form_page and food["number"] in form_page
    assert food["form"]["business_name"] in form_page and "变更后内容" in form_page
    assert "食品经营许可（变更）" in client.get("/cases").text
    case_page = client.get(tapped.headers["location"].removesuffix("/form")).text
    assert "食品经营许可（变更）" in case_page and "变更的证照：编号" in case_page


def test_a_licence_filed_for_an_enterprise_is_the_enterprises(client, auth, db):
    """An agent's case in an enterprise's name (委托授权): the licence is the applicant's."""
    enterprise = register(client)
    item = client.get(f"/api/v1/items/{FOOD}").json()
    case_no = new_case(client, auth, item)["case_no"]
    with db.session(write=True) as s, s.begin():
        # Set directly: granting needs a platform-verified legal person (test_authorisations).
        granted = Authorisation(
            enterprise_id=enterprise["account_id"],
            agent_id=s.scalars(select(Case.account_id).where(Case.case_no == case_no)).one(),
            items=None,
            valid_to=true_today() + timedelta(days=365),
        )
        s.add(granted)
        s.flush()
        case = s.scalars(select(Case).where(Case.case_no == case_no)).one()
        case.on_behalf_of_id, case.authorisation_id = enterprise["account_id"], granted.id
    fill_everything(client, auth, item, case_no)
    sent = client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth)
    assert sent.status_code == 202, sent.text
    send(client, envelope(case_no, "prereview.passed", {}))
    sent = client.post(f"/api/v1/cases/{case_no}/submission", headers=auth)
    assert sent.status_code == 202, sent.text
    send(client, envelope(case_no, "case.accepted", {"acceptance_no": "SL-ENT"}))
    approve(client, case_no, "JY13204120000555", true_today() + timedelta(days=900))
    assert "JY13204120000555" in wallet(client, bearer(client, enterprise))
    assert "JY13204120000555" not in wallet(client, auth)
