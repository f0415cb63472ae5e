"""Registration, login, tokens and throttling, through HTTP."""

from __future__ import annotations

from tests.conftest import (
    PASSWORD,
    bearer,
    csrf_of,
    make_phone,
    make_ric,
    make_uscc,
    register,
    web_login,
)


def test_register_person_and_enterprise(client):
    person = register(client)
    assert person["account_id"] > 0
    enterprise = register(
        client, kind="enterprise", name="常州某某餐饮有限公司", id_number=make_uscc()
    )
    assert enterprise["account_id"] != person["account_id"]


def test_register_with_lowercase_x_is_normalised(client):
    number = make_ric()
    while not number.endswith("X"):
        number = make_ric()
    response = client.post(
        "/api/v1/accounts",
        json={
            "kind": "person",
            "name": "李四",
            "id_number": number.lower(),
            "phone": make_phone(),
            "password": PASSWORD,
        },
    )
    assert response.status_code == 201


def test_bad_check_digits_are_refused_with_chinese_reasons(client):
    good = make_ric()
    bad_digit = "0" if good[-1] != "0" else "1"
    response = client.post(
        "/api/v1/accounts",
        json={
            "kind": "person",
            "name": "王五",
            "id_number": good[:-1] + bad_digit,
            "phone": make_phone(),
            "password": PASSWORD,
        },
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "校验位" in error["fields"]["id_number"]

    code = make_uscc()
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")
    response = client.post(
        "/api/v1/accounts",
        json={
            "kind": "enterprise",
            "name": "某公司",
            "id_number": wrong,
            "phone": make_phone(),
            "password": PASSWORD,
        },
    )
    assert response.status_code == 422
    assert "统一社会信用代码" in response.json()["error"]["fields"]["id_number"]


def test_bad_phone_short_password_and_missing_fields(client):
    response = client.post(
        "/api/v1/accounts",
        json={
            "kind": "person",
            "name": "",
            "id_number": make_ric(),
            "phone": "12345",
            "password": "short",
        },
    )
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"name", "phone", "password"}
    response = client.post("/api/v1/accounts", json={"kind": "alien"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"]["kind"]
    response = client.post(
        "/api/v1/accounts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"]


def test_duplicate_phone_or_id_is_409(client):
    person = register(client)
    response = client.post(
        "/api/v1/accounts",
        json={
            "kind": "person",
            "name": "赵六",
            "id_number": make_ric(),
            "phone": person["phone"],
            "password": PASSWORD,
        },
    )
    assert response.status_code == 409
    assert "phone" in response.json()["error"]["fields"]
    response = client.post(
        "/api/v1/accounts",
        json={
            "kind": "person",
            "name": "赵六",
            "id_number": person["id_number"],
            "phone": make_phone(),
            "password": PASSWORD,
        },
    )
    assert response.status_code == 409


def test_token_and_wrong_password(client, person):
    headers = bearer(client, person)
    assert client.get("/api/v1/cases", headers=headers).status_code == 200
    response = client.post(
        "/api/v1/tokens", json={"phone": person["phone"], "password": "wrong-password"}
    )
    assert response.status_code == 401
    unknown = client.post(
        "/api/v1/tokens", json={"phone": make_phone(), "password": "wrong-password"}
    )
    assert unknown.status_code == 401
    # Same answer whether or not the phone is registered.
    assert unknown.json()["error"]["message"] == response.json()["error"]["message"]


def test_bad_and_missing_tokens_are_401(client):
    assert client.get("/api/v1/cases").status_code == 401
    response = client.get("/api/v1/cases", headers={"Authorization": "Bearer forged.token.value"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_login_is_throttled_after_repeated_failures(client, person):
    for _ in range(4):
        assert (
            client.post(
                "/api/v1/tokens", json={"phone": person["phone"], "password": "nope-nope"}
            ).status_code
            == 401
        )
    response = client.post(
        "/api/v1/tokens", json={"phone": person["phone"], "password": "nope-nope"}
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    # Even the right password waits until the lock ends.
    again = client.post("/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD})
    assert again.status_code == 429


def test_web_login_throttled_too(client, person):
    page = client.get("/login")
    token = csrf_of(page.text)
    statuses = [
        client.post(
            "/login",
            data={"phone": person["phone"], "password": "bad-bad-bad", "csrf_token": token},
        ).status_code
        for _ in range(6)
    ]
    assert statuses[:4] == [401] * 4
    assert statuses[-1] == 429


def test_html_register_login_logout_and_masked_id(client):
    page = client.get("/register")
    number = make_ric()
    phone = make_phone()
    response = client.post(
        "/register",
        data={
            "kind": "person",
            "name": "钱七",
            "id_number": number,
            "phone": phone,
            "password": PASSWORD,
            "privacy_consent": "true",
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    account_page = client.get("/account")
    assert account_page.status_code == 200
    assert number not in account_page.text
    assert number[:4] + "*" * 12 + number[-2:] in account_page.text
    assert phone not in account_page.text
    logout = client.post(
        "/logout", data={"csrf_token": csrf_of(account_page.text)}, follow_redirects=False
    )
    assert logout.status_code == 303
    after = client.get("/account", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")


def test_register_form_errors_are_shown_next_to_fields(client):
    page = client.get("/register")
    response = client.post(
        "/register",
        data={
            "kind": "person",
            "name": "孙八",
            "id_number": "320412199001011230",
            "phone": "1",
            "password": "x",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 422
    assert 'id="error-summary"' in response.text
    assert 'id="f-phone-error"' in response.text
    assert 'aria-invalid="true"' in response.text


def test_forms_without_csrf_are_403(client, person):
    response = client.post("/login", data={"phone": person["phone"], "password": PASSWORD})
    assert response.status_code == 403
    assert "页面已过期" in response.text
    client.get("/login")
    response = client.post(
        "/login", data={"phone": person["phone"], "password": PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 403


def test_logged_out_session_cookie_is_worthless(client, person):
    web_login(client, person)
    cookie = client.cookies.get("portal_session")
    page = client.get("/account")
    client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    client.cookies.set("portal_session", cookie)
    response = client.get("/account", follow_redirects=False)
    assert response.status_code == 303


def test_production_hashes_passwords_with_argon2id_at_full_cost(client, monkeypatch):
    """The suite hashes cheaply (conftest); production keeps argon2id t=3, m=64 MiB, p=4."""
    from argon2.low_level import Type

    from portal import security

    production = security.PRODUCTION_HASHER
    assert (production.type, production.time_cost, production.memory_cost) == (
        Type.ID,
        3,
        65536,
    )
    assert production.parallelism == 4
    monkeypatch.setattr(security, "_hasher", production)
    stored = security.hash_password("correct-horse-9")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert security.verify_password(stored, "correct-horse-9")
    assert not security.verify_password(stored, "wrong-horse-9")
    # The hash an unknown phone is checked against costs what a real one does: made with
    # the same parameters, so a login for a phone nobody registered takes as long.
    assert not production.check_needs_rehash(security.PRODUCTION_DUMMY_HASH)
    monkeypatch.setattr(security, "_DUMMY_HASH", security.PRODUCTION_DUMMY_HASH)
    assert not security.verify_password(None, "correct-horse-9")
