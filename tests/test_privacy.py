"""PIPL basics: the rules page, consent, a copy of one's data, closing.

Observed through HTTP as a citizen would: the pages, the download, the API answers,
and whether the phone and number can sign in or register afterwards.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from portal.accounts.models import Account
from portal.cases.models import Case
from tests.conftest import (
    PASSWORD,
    PDF_BYTES,
    bearer,
    csrf_of,
    make_phone,
    make_ric,
    pick_item,
    register,
    valid_form,
    web_login,
)
from tests.idp.flow import sign_in
from tests.kit import to_platform


def account_row(db, account_id: int) -> Account:
    with db.session() as session:
        account = session.get(Account, account_id)
        assert account is not None
        return account


# --- the rules page ---------------------------------------------------------------------------


def test_the_rules_page_says_what_why_who_and_how_long(client, settings):
    home = client.get("/")
    assert 'href="/privacy"' in home.text  # in the footer of every page
    page = client.get("/privacy")
    assert page.status_code == 200
    text = page.text
    for words in (
        "收集哪些信息",
        "为什么收集",
        "提供给谁",
        "保存多久",
        "武进区行政审批局的审批业务系统",
    ):
        assert words in text
    # The periods are those the retention job and the sessions really use.
    assert f"{settings.draft_retention_days} 天无任何改动即自动删除" in text
    assert f"办结 {settings.closed_files_retention_days} 天后删除上传的材料文件" in text
    assert f"{settings.session_idle_minutes} 分钟无操作" in text
    assert "已提交的办件依法保留" in text and "可以重新注册" in text


# --- consent at registration ------------------------------------------------------------------


def _register_form(page_text: str, **extra) -> dict:
    return {
        "csrf_token": csrf_of(page_text),
        "kind": "person",
        "name": "冯同意",
        "id_number": make_ric(),
        "phone": make_phone(),
        "password": PASSWORD,
        **extra,
    }


def test_registration_without_consent_is_refused_next_to_the_box(client, db):
    page = client.get("/register")
    assert 'id="f-privacy_consent"' in page.text and 'href="/privacy"' in page.text
    form = _register_form(page.text)
    refused = client.post("/register", data=form)
    assert refused.status_code == 422
    assert 'href="#f-privacy_consent"' in refused.text  # in the summary at the top
    assert 'id="f-privacy_consent-error"' in refused.text  # and next to the box
    assert "请阅读并勾选同意《个人信息处理规则》" in refused.text
    assert form["name"] in refused.text  # what was typed comes back
    token = client.post("/api/v1/tokens", json={"phone": form["phone"], "password": PASSWORD})
    assert token.status_code == 401  # no account was made

    done = client.post(
        "/register", data={**form, "privacy_consent": "true"}, follow_redirects=False
    )
    assert done.status_code == 303
    with db.session() as session:
        account = session.scalars(select(Account).where(Account.phone == form["phone"])).one()
        assert account.privacy_version and account.privacy_consented_at is not None


def test_the_api_records_consent_when_the_app_sends_it(client, db):
    agreed = register(client, privacy_consent=True)
    silent = register(client)
    assert account_row(db, agreed["account_id"]).privacy_consented_at is not None
    assert account_row(db, silent["account_id"]).privacy_consented_at is None


# --- consent at the first 统一身份认证 sign-in ---------------------------------------------------


def _to_consent(stack, key: str):  # noqa: F811
    browser = stack.browser()
    page = sign_in(browser, to_platform(stack, browser), key)
    assert page.url.path == "/login/sso/consent", page.text[:300]
    return browser, page


def test_a_first_sso_sign_in_waits_for_consent_and_declining_leaves_nothing(stack):  # noqa: F811
    browser, page = _to_consent(stack, "lina")
    assert "首次通过统一身份认证登录" in page.text and "个人信息处理规则" in page.text
    assert stack.accounts() == []  # nothing created before the answer
    unticked = browser.post(
        "/login/sso/consent", data={"csrf_token": csrf_of(page.text), "action": "agree"}
    )
    assert unticked.status_code == 422 and 'id="f-privacy_consent-error"' in unticked.text
    assert stack.accounts() == []
    declined = browser.post(
        "/login/sso/consent", data={"csrf_token": csrf_of(unticked.text), "action": "decline"}
    )
    assert declined.url.path == "/login" and "未开设或关联账户" in declined.text
    assert stack.accounts() == []
    assert browser.get("/login/sso/consent").url.path == "/login"  # nothing left pending
    assert browser.get("/account", follow_redirects=False).status_code == 303


def test_agreeing_signs_in_and_records_consent_and_the_next_sign_in_does_not_ask(stack):  # noqa: F811
    browser, page = _to_consent(stack, "lina")
    agreed = browser.post(
        "/login/sso/consent",
        data={"csrf_token": csrf_of(page.text), "privacy_consent": "true", "action": "agree"},
    )
    assert agreed.url.path == "/account" and "已通过统一身份认证登录" in agreed.text
    (account,) = stack.accounts()
    assert account.privacy_version and account.privacy_consented_at is not None
    again = stack.browser()
    second = sign_in(again, to_platform(stack, again), "lina")
    assert second.url.path == "/account"  # straight in: consent was given


# --- a copy of one's data ---------------------------------------------------------------------


def test_the_download_holds_the_callers_data_and_nobody_elses(client, person, auth):
    item = pick_item(client, prereview=True)
    mine = client.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": valid_form(item)}, headers=auth
    ).json()
    material = item["materials"][0]["code"]
    uploaded = client.post(
        f"/api/v1/cases/{mine['case_no']}/materials/{material}/files",
        files={"file": ("营业执照.pdf", PDF_BYTES, "application/pdf")},
        headers=auth,
    )
    assert uploaded.status_code == 201, uploaded.text
    other = register(client, name="别人家")
    theirs = client.post(
        "/api/v1/cases", json={"item_code": item["code"]}, headers=bearer(client, other)
    ).json()

    answer = client.get("/api/v1/me/export", headers=auth)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert "attachment" in answer.headers["content-disposition"]
    data = answer.json()
    assert data["account"]["phone"] == person["phone"]
    assert data["account"]["id_number"] == person["id_number"]
    (case,) = data["cases"]
    assert case["case_no"] == mine["case_no"] and case["status"] == "draft"
    assert (
        case["form"] == client.get(f"/api/v1/cases/{mine['case_no']}", headers=auth).json()["form"]
    )
    files = [f["filename"] for m in case["materials"] for f in m["files"]]
    assert files == ["营业执照.pdf"]
    assert any(e["type"] == "case.created" for e in case["timeline"])
    text = answer.text
    assert theirs["case_no"] not in text and other["phone"] not in text
    assert "password_hash" not in text and "$argon2" not in text

    web_login(client, person)
    page = client.get("/account")
    assert 'href="/account/export"' in page.text
    download = client.get("/account/export")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert json.loads(download.text)["cases"][0]["case_no"] == mine["case_no"]
    assert client.get("/api/v1/me/export").status_code == 401


# --- closing the account ----------------------------------------------------------------------


def submit_for_prereview(client, auth, item) -> str:
    case_no = client.post(
        "/api/v1/cases", json={"item_code": item["code"], "form": valid_form(item)}, headers=auth
    ).json()["case_no"]
    for m in item["materials"]:
        if m["required"]:
            assert (
                client.post(
                    f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                    files={"file": ("scan.pdf", PDF_BYTES, "application/pdf")},
                    headers=auth,
                ).status_code
                == 201
            )
    sent = client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth)
    assert sent.status_code == 202, sent.text
    return case_no


def test_closing_deletes_drafts_keeps_submitted_cases_and_releases_the_numbers(
    client, person, auth, db
):
    item = pick_item(client, prereview=True)
    submitted = submit_for_prereview(client, auth, item)
    withdrawn = client.post(
        f"/api/v1/cases/{submitted}/withdrawal", json={"reason": "不办了"}, headers=auth
    )
    assert withdrawn.status_code == 200, withdrawn.text
    draft = client.post("/api/v1/cases", json={"item_code": item["code"]}, headers=auth).json()

    web_login(client, person)
    page = client.get("/account/close")
    assert page.status_code == 200
    assert "未提交的草稿 1 件" in page.text and submitted in page.text
    assert "将依法保留" in page.text and "可以重新注册" in page.text
    unticked = client.post("/account/close", data={"csrf_token": csrf_of(page.text)})
    assert unticked.status_code == 422 and 'id="f-confirm-error"' in unticked.text
    assert 'id="f-password-error"' in unticked.text  # the password is asked again
    wrong = client.post(
        "/account/close",
        data={"csrf_token": csrf_of(page.text), "confirm": "true", "password": "not-it-at-all"},
    )
    assert wrong.status_code == 422 and "密码不正确" in wrong.text
    closed = client.post(
        "/account/close",
        data={"csrf_token": csrf_of(page.text), "confirm": "true", "password": PASSWORD},
    )
    assert closed.status_code == 200 and "您的账户已注销" in closed.text
    assert client.get("/account", follow_redirects=False).status_code == 303  # signed out
    assert client.get(f"/api/v1/cases/{submitted}", headers=auth).status_code == 401

    with db.session() as session:
        numbers = set(session.scalars(select(Case.case_no)))
    assert submitted in numbers and draft["case_no"] not in numbers

    # Sign-in refused with a clear message, on the page and in the API; a wrong password
    # still gets the usual answer, so the message tells a stranger nothing.
    login = client.get("/login")
    refused = client.post(
        "/login",
        data={"csrf_token": csrf_of(login.text), "phone": person["phone"], "password": PASSWORD},
    )
    assert refused.status_code == 401 and "该账户已注销" in refused.text
    api = client.post("/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD})
    assert api.status_code == 401 and api.json()["error"]["code"] == "account_closed"
    guess = client.post("/api/v1/tokens", json={"phone": person["phone"], "password": "guess-1234"})
    assert guess.json()["error"]["code"] == "bad_credentials"

    # The phone and the number register again: a new, empty account.
    again = register(client, phone=person["phone"], id_number=person["id_number"])
    fresh = bearer(client, again)
    assert client.get("/api/v1/cases", headers=fresh).json()["cases"] == []


def test_closing_waits_while_a_case_is_being_handled(client, person, auth):
    item = pick_item(client, prereview=True)
    busy = submit_for_prereview(client, auth, item)
    web_login(client, person)
    page = client.get("/account/close")
    assert "暂不能注销" in page.text and busy in page.text
    assert 'action="/account/close"' not in page.text
    answer = client.post("/api/v1/me/close", json={"password": PASSWORD}, headers=auth)
    assert answer.status_code == 409 and busy in answer.json()["error"]["message"]
    assert client.get("/api/v1/me", headers=auth).status_code == 200  # still open


@pytest.mark.parametrize("body", [{}, {"password": "wrong-password-1"}])
def test_the_api_close_needs_the_password(client, auth, body):
    answer = client.post("/api/v1/me/close", json=body, headers=auth)
    assert answer.status_code == 422 and "password" in answer.json()["error"]["fields"]
    assert client.get("/api/v1/me", headers=auth).status_code == 200


def test_the_api_closes_and_every_token_stops(client, person, auth):
    other_token = bearer(client, person)
    assert (
        client.post("/api/v1/me/close", json={"password": PASSWORD}, headers=auth).status_code
        == 204
    )
    assert client.get("/api/v1/me", headers=auth).status_code == 401
    assert client.get("/api/v1/me", headers=other_token).status_code == 401


def test_an_enterprise_waits_for_the_cases_an_agent_filed_in_its_name(client, db):
    from datetime import timedelta

    from portal.accounts.models import Authorisation
    from portal.clock import today_cst
    from tests.conftest import make_uscc

    uscc = make_uscc()
    company = register(client, kind="enterprise", name="武进注销测试有限公司", id_number=uscc)
    agent = register(client, name="郑经办")
    with db.session(write=True) as session, session.begin():
        session.add(
            Authorisation(
                enterprise_id=company["account_id"],
                agent_id=agent["account_id"],
                items=None,
                valid_to=today_cst() + timedelta(days=30),
            )
        )
    agent_auth = bearer(client, agent)
    item = pick_item(client, prereview=True)
    case_no = client.post(
        "/api/v1/cases",
        json={"item_code": item["code"], "form": valid_form(item), "on_behalf_of": uscc},
        headers=agent_auth,
    ).json()["case_no"]
    for m in item["materials"]:
        if m["required"]:
            client.post(
                f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                files={"file": ("scan.pdf", PDF_BYTES, "application/pdf")},
                headers=agent_auth,
            )
    sent = client.post(f"/api/v1/cases/{case_no}/prereview", headers=agent_auth)
    assert sent.status_code == 202, sent.text
    company_auth = bearer(client, company)
    answer = client.post("/api/v1/me/close", json={"password": PASSWORD}, headers=company_auth)
    assert answer.status_code == 409 and case_no in answer.json()["error"]["message"]
