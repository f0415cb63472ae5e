"""统一身份认证 sign-in, end to end: the real redirect flow between two real servers.

The reference identity platform (idp/) and the portal each run under uvicorn; an
httpx client plays the phone: it follows the portal's redirect to the platform,
posts the platform's login form, and follows the way back to the callback.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

import idp.app as idp_app
from idp.identities import BY_KEY
from portal.accounts.models import Account
from portal.app import create_app
from portal.exchange.models import OutboxMessage
from portal.notifications.models import Message
from portal.settings import Settings
from tests.conftest import PASSWORD, csrf_of, make_phone, make_ric
from tests.idp.flow import CLIENT_ID, CLIENT_SECRET
from tests.kit import (
    Stack,
    portal_settings,
    sso_api,
    sso_fill,
    sso_login,
    sso_submitted_events,
    to_platform,
)
from tests.live import ThreadServer, free_port

FAILED = "登录信息校验未通过"


def test_sign_in_creates_an_account_and_the_next_sign_in_reuses_it(stack):
    lina = BY_KEY["lina"]
    browser, page = sso_login(stack, "lina")
    assert page.status_code == 200 and str(page.url) == f"{stack.url}/account"
    assert "已通过统一身份认证登录，并为您开设了账户" in page.text
    assert "已通过统一身份认证核验，3 级" in page.text
    assert "设置登录密码" in page.text
    (account,) = stack.accounts()
    assert (account.name, account.id_number, account.phone) == (
        lina.name,
        lina.id_number,
        lina.phone,
    )
    assert (account.verified_by, account.verified_level, account.sso_subject) == (
        "sso",
        3,
        lina.sub,
    )
    # No password until the citizen sets one: the phone alone logs nobody in.
    assert account.password_hash is None
    assert stack.token(lina.phone, "").status_code in (401, 422)
    assert stack.token(lina.phone, "anything-at-all").status_code == 401

    _, again = sso_login(stack, "lina")
    assert again.status_code == 200 and "并为您开设了账户" not in again.text
    assert [a.id for a in stack.accounts()] == [account.id]

    # Setting a first password turns on password login; /api/v1/me shows the proof.
    form = browser.get("/account").text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    done = browser.post("/account/password", data={"csrf_token": csrf, "password": PASSWORD})
    assert done.status_code == 200 and "密码已设置" in done.text
    me = stack.me(lina.phone)
    assert me["verified"]["by"] == "sso" and me["verified"]["level"] == 3
    assert me["verified"]["at"].endswith("Z")
    assert me["id_number"] == lina.id_number[:4] + "*" * 12 + lina.id_number[-2:]
    assert me["phone"] == lina.phone[:3] + "****" + lina.phone[-4:]
    assert me["subjects"] == [
        {
            "kind": "person",
            "name": lina.name,
            "id_number": me["id_number"],
            "authorisation_id": None,
        }
    ]


def test_sign_in_links_the_account_registered_with_the_verified_phone(stack):
    wangfang = BY_KEY["wangfang"]
    mine = stack.register(name="王小芳", phone=wangfang.phone)
    assert stack.me(wangfang.phone)["verified"] is None

    _, page = sso_login(stack, "wangfang")
    assert page.status_code == 200 and "并为您开设了账户" not in page.text
    (account,) = stack.accounts()
    assert account.id == mine["account_id"]
    # The verified name and number replace what was typed in.
    assert (account.name, account.id_number, account.verified_level) == (
        wangfang.name,
        wangfang.id_number,
        4,
    )
    # Password login keeps working for an account that had one.
    me = stack.me(wangfang.phone)
    assert me["verified"]["level"] == 4 and me["name"] == wangfang.name


def test_the_verified_owner_takes_the_number_from_an_account_that_only_typed_it(stack):
    zhang = BY_KEY["zhangwei"]
    squatter = stack.register(name="张伟", id_number=zhang.id_number)

    _, page = sso_login(stack, "zhangwei")
    assert page.status_code == 200 and "并为您开设了账户" in page.text
    owner = next(a for a in stack.accounts() if a.id != squatter["account_id"])
    assert owner.id_number == zhang.id_number and owner.verified_level == 2

    # The other account keeps going, without the number, and is told twice.
    other = stack.me(squatter["phone"])
    assert other["id_number"] == "" and other["verified"] is None
    with stack.app.state.db.session() as s:
        (message,) = s.scalars(select(Message).where(Message.account_id == squatter["account_id"]))
        assert "已由证件持有人本人通过统一身份认证核验" in message.body
        jobs = [json.loads(m.payload) for m in s.scalars(select(OutboxMessage))]
        sms = [job for job in jobs if job.get("to") == squatter["phone"]]
    assert len(sms) == 1 and sms[0]["type"] == "identity.number_moved"
    assert zhang.id_number not in sms[0]["text"]  # masked, like every SMS


def test_a_phone_the_platform_did_not_verify_links_nothing(stack):
    liuyang = BY_KEY["liuyang"]  # phone_number_verified: false
    stack.register(name="刘某", phone=liuyang.phone)
    _, page = sso_login(stack, "liuyang")
    # No account of its own can be opened without a verified phone, and the account
    # that typed this phone in is not handed over on an unverified claim.
    assert page.status_code == 400 and "未提供已核验的手机号码" in page.text
    assert all(a.verified_by is None for a in stack.accounts())


def _callback_query(stack: Stack, browser: httpx.Client) -> httpx.URL:
    """Up to the platform's redirect back, not followed: the callback URL it names."""
    page = to_platform(stack, browser)
    from tests.idp.flow import txn_of

    answer = browser.post(
        f"{stack.idp.url}/authorize",
        data={
            "txn": txn_of(page.text),
            "identity": "lina",
            "password": BY_KEY["lina"].password,
            "action": "login",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    return httpx.URL(answer.headers["location"])


def _nobody_signed_in(stack: Stack, browser: httpx.Client) -> None:
    page = browser.get("/account", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert stack.accounts() == []


@pytest.mark.parametrize("change", ["tampered", "missing", "replayed"])
def test_a_wrong_or_missing_state_is_400_and_signs_nobody_in(stack, change):
    browser = stack.browser()
    callback = _callback_query(stack, browser)
    assert str(callback).startswith(f"{stack.url}/login/sso/callback?")
    params = dict(callback.params)
    if change == "tampered":
        params["state"] = params["state"][:-2] + "xx"
    elif change == "missing":
        params.pop("state")
    else:
        consent = browser.get(callback.copy_with(params=params))
        assert consent.status_code == 200 and consent.url.path == "/login/sso/consent"
        agreed = {"csrf_token": csrf_of(consent.text), "privacy_consent": "true", "action": "agree"}
        assert browser.post("/login/sso/consent", data=agreed).status_code == 200
        browser.cookies.clear()  # a second browser replays the same code and state
        assert stack.accounts()
    answer = browser.get("/login/sso/callback", params=params)
    assert answer.status_code == 400
    assert FAILED in answer.text and '<html lang="zh-CN"' in answer.text
    if change != "replayed":
        _nobody_signed_in(stack, browser)
    else:
        assert browser.get("/account", follow_redirects=False).status_code == 303


def _forged(**change: Any):
    """An ID token maker for the platform that breaks one thing a relying party checks."""
    real = idp_app.make_id_token
    other_key = RSAKey.generate_key(2048, private=True)

    def make(*, key, **kw) -> str:
        token = real(key=key, **kw)
        claims = jwt.decode(token, key).claims
        header = {"alg": "RS256", "kid": key.kid}
        now = int(time.time())
        if change.get("expired"):
            claims |= {"iat": now - 7200, "exp": now - 3600}
        if "nonce" in change:
            claims["nonce"] = change["nonce"]
        if "aud" in change:
            claims["aud"] = change["aud"]
        if "iss" in change:
            claims["iss"] = change["iss"]
        signer = other_key if change.get("other_key") else key
        signed = jwt.encode(header, claims, signer)
        if change.get("flip"):
            head, body, sig = signed.split(".")
            signed = ".".join([head, body, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])
        return signed

    return make


@pytest.mark.parametrize(
    "change",
    [
        {"expired": True},
        {"nonce": "not-the-one-we-sent"},
        {"aud": "another-client"},
        {"iss": "http://127.0.0.1:1"},
        {"other_key": True},
        {"flip": True},
    ],
    ids=["expired", "wrong-nonce", "wrong-aud", "wrong-iss", "foreign-key", "tampered-signature"],
)
def test_an_id_token_failing_any_check_is_400_and_signs_nobody_in(stack, monkeypatch, change):
    monkeypatch.setattr(idp_app, "make_id_token", _forged(**change))
    browser, answer = sso_login(stack, "lina")
    assert answer.status_code == 400
    assert FAILED in answer.text
    _nobody_signed_in(stack, browser)


def test_next_stays_on_the_portal(stack):
    _, page = sso_login(stack, "lina", next="https://evil.example/")
    assert str(page.url) == f"{stack.url}/cases"


def test_cancelling_at_the_platform_returns_to_the_login_page(stack):
    browser = stack.browser()
    page = to_platform(stack, browser)
    from tests.idp.flow import txn_of

    answer = browser.post(
        f"{stack.idp.url}/authorize", data={"txn": txn_of(page.text), "action": "cancel"}
    )
    assert str(answer.url).startswith(f"{stack.url}/login") and "已取消" in answer.text
    _nobody_signed_in(stack, browser)


def test_the_button_shows_only_when_an_issuer_is_set(stack, client):
    with stack.browser() as browser:
        assert "统一身份认证登录" in browser.get("/login").text
        assert "统一身份认证登录" in browser.get("/register").text
    assert "统一身份认证登录" not in client.get("/login").text
    assert client.get("/login/sso", follow_redirects=False).status_code == 404


@pytest.mark.parametrize(
    ("issuer", "ok"),
    [
        ("https://tyrz.jiangsu.gov.cn", True),
        ("http://127.0.0.1:8200", True),
        ("http://localhost:8200", True),
        ("http://tyrz.jiangsu.gov.cn", False),
        ("http://10.0.0.5:8200", False),
    ],
)
def test_plain_http_issuers_only_on_loopback(tmp_path, issuer, ok):
    make = lambda: Settings(  # noqa: E731
        data_dir=tmp_path,
        secret_key="k" * 40,
        sso_issuer=issuer,
        sso_client_id="c",
        sso_client_secret="s",
    ).prepare()
    if ok:
        assert make().sso_issuer == issuer
    else:
        with pytest.raises(RuntimeError, match="PORTAL_SSO_ISSUER"):
            make()


def test_submission_carries_the_verification_and_refuses_a_moved_number():
    from datetime import UTC, datetime

    from portal.errors import Forbidden
    from portal.exchange.payloads import _applicant

    verified = Account(
        kind="person",
        name="李娜",
        id_type="RIC",
        id_number=BY_KEY["lina"].id_number,
        phone="13951000302",
        verified_by="sso",
        verified_level=3,
        verified_at=datetime(2026, 12, 2, 6, 30, tzinfo=UTC),
    )
    assert _applicant(verified)["verified"] == {
        "by": "sso",
        "level": 3,
        "at": "2026-12-02T06:30:00Z",
    }
    typed = Account(kind="person", name="x", id_type="RIC", id_number=make_ric(), phone="1")
    assert _applicant(typed)["verified"] is None
    typed.id_number = None
    with pytest.raises(Forbidden):
        _applicant(typed)


def test_a_platform_that_cannot_be_reached_is_a_calm_503(tmp_path, database_url):
    port = free_port()
    settings = portal_settings(
        tmp_path,
        database_url,
        port,
        sso_issuer=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        sso_client_id=CLIENT_ID,
        sso_client_secret=CLIENT_SECRET,
    )
    with ThreadServer(create_app(settings), port) as portal:
        answer = httpx.get(f"{portal.url}/login/sso", params={"next": "/cases"}, timeout=30)
    assert answer.status_code == 503
    assert "统一身份认证平台暂时无法访问" in answer.text


def test_me_needs_a_token(stack):
    assert httpx.get(f"{stack.url}/api/v1/me").status_code == 401


# --- the identity rule of formal submission (identity.md, "Rules the portal keeps") -------


def _ready_case(api: httpx.Client, *, prereview: bool) -> tuple[str, dict]:
    """A case of an item with (or without) 网上预审, every field and required file in."""
    for summary in api.get("/api/v1/items").json()["items"]:
        if summary["prereview"] == prereview and summary["online"]:
            break
    item = api.get(f"/api/v1/items/{summary['code']}").json()
    answer = api.post("/api/v1/cases", json={"item_code": item["code"]})
    assert answer.status_code == 201, answer.text
    case_no = answer.json()["case_no"]
    sso_fill(api, case_no, item)
    return case_no, item


def test_formal_submission_needs_level_2_then_goes_with_the_verified_applicant(stack):
    lina = BY_KEY["lina"]
    # An account that only typed its name and number in, with lina's phone.
    person = stack.register(phone=lina.phone, name=lina.name, id_number=lina.id_number)
    api = sso_api(stack, stack.token(person["phone"]).json()["token"])
    case_no, _ = _ready_case(api, prereview=False)

    refused = api.post(f"/api/v1/cases/{case_no}/submission")
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "verification_required"
    assert "统一身份认证" in error["message"] and "2 级" in error["message"]
    assert api.get(f"/api/v1/cases/{case_no}").json()["status"] == "draft"
    assert sso_submitted_events(stack, case_no) == []

    # The check-your-answers page says so before the button, with the way to verify.
    browser = stack.browser()
    page = browser.post(
        "/login",
        data={
            "phone": person["phone"],
            "password": PASSWORD,
            "csrf_token": csrf_of(browser.get("/login").text),
        },
    )
    review = browser.get(f"/cases/{case_no}/review")
    assert "提交前请先核验身份" in review.text
    assert f"/login/sso?next=/cases/{case_no}/review" in review.text.replace("%2F", "/")
    pressed = browser.post(
        f"/cases/{case_no}/submission", data={"csrf_token": csrf_of(review.text)}
    )
    assert pressed.status_code == 403 and "error-summary" in pressed.text
    assert "统一身份认证" in pressed.text

    # Signing in through the platform links this account (same phone) and verifies it.
    browser, page = sso_login(stack, "lina", browser, next=f"/cases/{case_no}/review")
    assert page.status_code == 200 and str(page.url).endswith(f"/cases/{case_no}/review")
    assert "提交前请先核验身份" not in page.text
    accepted = api.post(f"/api/v1/cases/{case_no}/submission")
    assert accepted.status_code == 202, accepted.text
    (event,) = sso_submitted_events(stack, case_no)
    verified = event["data"]["applicant"]["verified"]
    assert (verified["by"], verified["level"]) == ("sso", lina.level)


def test_a_number_taken_back_by_its_owner_stops_the_other_accounts_draft(stack):
    wangfang = BY_KEY["wangfang"]
    typed = stack.register(id_number=wangfang.id_number)  # another phone, her number
    api = sso_api(stack, stack.token(typed["phone"]).json()["token"])
    case_no, _ = _ready_case(api, prereview=True)
    sso_login(stack, "wangfang")  # the owner signs in: the number moves to her account
    refused = api.post(f"/api/v1/cases/{case_no}/prereview")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "verification_required"
    assert api.get(f"/api/v1/cases/{case_no}").json()["status"] == "draft"  # kept


def test_prereview_needs_a_proven_phone_where_registration_proves_phones(tmp_path, database_url):
    """Accounts from before SMS codes (no proven phone) prove it once by a code login."""
    from tests.conftest import DEV_CODES

    settings = Settings(
        data_dir=tmp_path / "p",
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        bureau_url="http://bureau.invalid",
        bureau_secret="test-bureau-secret",
        dispatcher=False,
        register_needs_code=False,
    ).prepare()
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as old:
        person = {
            "kind": "person",
            "name": "赵旧",
            "id_number": make_ric(),
            "phone": make_phone(),
            "password": PASSWORD,
        }
        assert old.post("/api/v1/accounts", json=person).status_code == 201
    settings.register_needs_code = True
    with TestClient(create_app(settings)) as client:
        token = client.post(
            "/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD}
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        item = next(
            client.get(f"/api/v1/items/{s['code']}").json()
            for s in client.get("/api/v1/items").json()["items"]
            if s["prereview"] and s["online"]
        )
        case_no = client.post(
            "/api/v1/cases", json={"item_code": item["code"]}, headers=auth
        ).json()["case_no"]
        refused = client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "verification_required"
        assert "短信验证码" in refused.json()["error"]["message"]
        assert client.get("/api/v1/me", headers=auth).json()["verified"] is None

        before = len(DEV_CODES.codes)
        sent = client.post(
            "/api/v1/verifications", json={"phone": person["phone"], "purpose": "login"}
        )
        assert sent.status_code == 202 and len(DEV_CODES.codes) > before
        token = client.post(
            "/api/v1/tokens", json={"phone": person["phone"], "code": DEV_CODES.codes[-1]}
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        me = client.get("/api/v1/me", headers=auth).json()
        assert (me["verified"]["by"], me["verified"]["level"]) == ("sms", 1)
        # Past the identity rule now: what is left is the case's own content (422).
        assert client.post(f"/api/v1/cases/{case_no}/prereview", headers=auth).status_code == 422
