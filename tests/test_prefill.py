"""Prefill: a new case's form starts with what the account already holds.

The oracle is the registration each test made (or the enterprise it set up), and the
catalogue's own field names and labels, read through the public API: never the
prefill's table.
"""

from __future__ import annotations

from datetime import timedelta

from portal.accounts.models import Account, Authorisation
from portal.clock import today_cst
from tests.conftest import bearer, csrf_of, make_phone, make_ric, make_uscc, register, web_login
from tests.kit import an_item, field, items


def new_case(client, auth, item, **body) -> dict:
    answer = client.post("/api/v1/cases", json={"item_code": item["code"], **body}, headers=auth)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_persons_new_case_holds_their_name_number_and_phone(client, person, auth):
    item = an_item(client, has=("legal_rep_name", "legal_rep_id_number"), proposed=False)
    form = new_case(client, auth, item)["form"]
    assert form["legal_rep_name"] == person["name"]  # 经营者 / 申请人: the person applying
    assert form["legal_rep_id_number"] == person["id_number"]
    if field(item, "contact_phone"):
        assert form["contact_phone"] == person["phone"]
    # Nothing the person's account does not hold: no USCC, no business name.
    assert "uscc" not in form and "business_name" not in form


def test_a_proposed_legal_representative_is_left_for_the_citizen(client, person, auth):
    item = an_item(client, has=("legal_rep_name",), proposed=True)
    form = new_case(client, auth, item)["form"]
    assert "legal_rep_name" not in form and "legal_rep_id_number" not in form
    assert form.get("contact_phone") == person["phone"]
    proposed = [f["name"] for f in item["fields"] if f["label"].startswith("拟")]
    assert proposed and not any(name in form for name in proposed)


def test_what_the_caller_sends_wins_and_everything_stays_editable(client, person, auth):
    item = an_item(client, has=("contact_phone",))
    case = new_case(client, auth, item, form={"contact_phone": "0519-86312345"})
    assert case["form"]["contact_phone"] == "0519-86312345"
    changed = client.patch(
        f"/api/v1/cases/{case['case_no']}", json={"form": {"contact_phone": ""}}, headers=auth
    )
    assert changed.status_code == 200, changed.text
    assert "contact_phone" not in changed.json()["form"]


def test_an_enterprise_account_fills_its_name_uscc_and_legal_representative(client, db):
    uscc = make_uscc()
    company = register(client, kind="enterprise", name="常州市试验贸易有限公司", id_number=uscc)
    with db.session(write=True) as session, session.begin():
        session.get(Account, company["account_id"]).legal_rep_name = "钱法人"
    item = an_item(client, has=("uscc", "legal_rep_name", "business_name"), proposed=False)
    assert not field(item, "business_name")["label"].startswith("拟")
    form = new_case(client, bearer(client, company), item)["form"]
    assert form["uscc"] == uscc
    assert form["business_name"] == company["name"]
    assert form["legal_rep_name"] == "钱法人"
    assert form.get("contact_phone", company["phone"]) == company["phone"]


def test_an_agent_filing_for_an_enterprise_gets_the_enterprises_data_and_own_phone(client, db):
    uscc = make_uscc()
    company = register(client, kind="enterprise", name="武进测试食品有限公司", id_number=uscc)
    agent = register(client, name="孙经办", id_number=make_ric(), phone=make_phone())
    with db.session(write=True) as session, session.begin():
        session.get(Account, company["account_id"]).legal_rep_name = "周法人"
        session.add(
            Authorisation(
                enterprise_id=company["account_id"],
                agent_id=agent["account_id"],
                items=None,
                valid_to=today_cst() + timedelta(days=30),
            )
        )
    item = an_item(client, has=("uscc", "legal_rep_name", "contact_phone"), proposed=False)
    form = new_case(client, bearer(client, agent), item, on_behalf_of=uscc)["form"]
    assert form["uscc"] == uscc
    assert form["legal_rep_name"] == "周法人"  # the enterprise's, not the agent's name
    assert form["contact_phone"] == agent["phone"]  # the agent is the one called back
    if field(item, "business_name") and not field(item, "business_name")["label"].startswith("拟"):
        assert form["business_name"] == company["name"]
    assert agent["id_number"] not in form.values()


def test_the_form_page_shows_the_prefilled_values_and_a_second_tap_reuses_the_draft(client, person):
    web_login(client, person)
    item = an_item(client, has=("contact_phone",))
    page = client.get(f"/items/{item['code']}")
    first = client.post(
        "/cases", data={"csrf_token": csrf_of(page.text), "item_code": item["code"]}
    )
    assert first.status_code == 200 and "/form" in str(first.url)
    assert f'value="{person["phone"]}"' in first.text
    again = client.post(
        "/cases", data={"csrf_token": csrf_of(first.text), "item_code": item["code"]}
    )
    assert str(again.url) == str(first.url)  # only the prefill in it: still untouched
    assert "您已有该事项的空白草稿" in again.text


def test_every_case_of_a_new_bundle_is_prefilled(client, person, auth):
    for summary in client.get("/api/v1/bundles").json()["bundles"]:
        started = client.post(f"/api/v1/bundles/{summary['code']}/cases", json={}, headers=auth)
        if started.status_code == 201:
            break
    else:
        raise AssertionError("no bundle could be started")
    cases = [
        client.get(f"/api/v1/cases/{c['case_no']}", headers=auth).json()
        for c in started.json()["cases"]
    ]
    by_item = {i["code"]: i for i in items(client)}
    asked = [c for c in cases if field(by_item[c["item_code"]], "contact_phone")]
    assert asked, "the bundle asks nobody's phone: pick another"
    assert all(c["form"]["contact_phone"] == person["phone"] for c in asked)


def test_a_prefilled_number_is_masked_on_check_your_answers(client, person, auth):
    item = an_item(client, has=("legal_rep_id_number",), proposed=False)
    case = new_case(client, auth, item)
    assert case["form"]["legal_rep_id_number"] == person["id_number"]
    web_login(client, person)
    review = client.get(f"/cases/{case['case_no']}/review")
    number = person["id_number"]
    assert number not in review.text
    assert number[:4] + "*" * 12 + number[-2:] in review.text
    form = client.get(f"/cases/{case['case_no']}/form")
    assert f'value="{number}"' in form.text  # whole where it is edited
