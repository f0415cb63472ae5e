"""Abuse of accounts, through HTTP: nobody can lock a citizen out, tokens can be revoked,
registration answers are rationed per address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import update

from portal.accounts import service
from portal.accounts.models import Account
from tests.conftest import PASSWORD, bearer, csrf_of, make_phone, make_ric, register


@contextmanager
def from_address(app, address: str) -> Iterator[TestClient]:
    """A client whose requests come from `address`, as another phone or computer would."""
    with TestClient(app, base_url="http://testserver", client=(address, 40000)) as c:
        yield c


def token_answer(client: TestClient, phone: str, password: str):
    return client.post("/api/v1/tokens", json={"phone": phone, "password": password})


def test_failures_from_other_addresses_never_lock_the_owner_out(app, client, person):
    # The attack of the review: five wrong passwords, each from another address.
    for n in range(5):
        with from_address(app, f"198.51.100.{n + 1}") as attacker:
            assert token_answer(attacker, person["phone"], "guess-guess").status_code == 401
    with from_address(app, "203.0.113.7") as owner:
        assert token_answer(owner, person["phone"], PASSWORD).status_code == 200
        # And again after the attacker exhausts one address: only that address waits.
    with from_address(app, "198.51.100.9") as attacker:
        answers = [token_answer(attacker, person["phone"], "guess-guess") for _ in range(6)]
    assert [a.status_code for a in answers[:4]] == [401] * 4
    assert answers[-1].status_code == 429 and int(answers[-1].headers["Retry-After"]) > 0
    assert "登录失败次数过多" in answers[-1].json()["error"]["message"]
    with from_address(app, "203.0.113.7") as owner:
        assert token_answer(owner, person["phone"], PASSWORD).status_code == 200


def test_the_page_login_answers_the_same(app, person):
    for n in range(5):
        with from_address(app, f"198.51.100.{n + 1}") as attacker:
            page = attacker.get("/login")
            wrong = attacker.post(
                "/login",
                data={
                    "phone": person["phone"],
                    "password": "guess-guess",
                    "csrf_token": csrf_of(page.text),
                },
            )
            assert wrong.status_code == 401
    with from_address(app, "203.0.113.7") as owner:
        page = owner.get("/login")
        data = {"phone": person["phone"], "csrf_token": csrf_of(page.text)}
        statuses = [
            owner.post("/login", data={**data, "password": "typo-typo"}).status_code
            for _ in range(5)
        ]
        assert statuses == [401] * 4 + [429]
        locked = owner.post("/login", data={**data, "password": PASSWORD})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
        assert "登录失败次数过多" in locked.text


def test_the_backstop_slows_many_addresses_but_not_the_owners_own(settings, person):
    """Guesses from many addresses hit a higher per-phone limit; an address the phone
    logged in from before is not held by it."""
    from portal.app import create_app

    strict = settings.model_copy(update={"login_phone_max_failures": 3})
    app = create_app(strict)
    with from_address(app, "203.0.113.7") as owner:
        assert token_answer(owner, person["phone"], PASSWORD).status_code == 200
    statuses = []
    for n in range(3):
        with from_address(app, f"198.51.100.{n + 1}") as attacker:
            statuses.append(token_answer(attacker, person["phone"], "guess-guess").status_code)
    assert statuses == [401, 401, 429]
    with from_address(app, "198.51.100.50") as stranger:
        new_place = token_answer(stranger, person["phone"], PASSWORD)
    assert new_place.status_code == 429 and int(new_place.headers["Retry-After"]) > 60
    with from_address(app, "203.0.113.7") as owner:
        assert token_answer(owner, person["phone"], PASSWORD).status_code == 200


def test_a_revoked_token_is_worthless(client, person):
    first = bearer(client, person)
    second = bearer(client, person)
    assert client.get("/api/v1/cases", headers=first).status_code == 200
    assert client.delete("/api/v1/tokens", headers=first).status_code == 204
    after = client.get("/api/v1/cases", headers=first)
    assert after.status_code == 401 and after.json()["error"]["code"] == "token_revoked"
    assert "已注销" in after.json()["error"]["message"]
    assert client.delete("/api/v1/tokens", headers=first).status_code == 401
    # Another login (another phone of the citizen) keeps its own token.
    assert client.get("/api/v1/cases", headers=second).status_code == 200
    assert client.delete("/api/v1/tokens").status_code == 401


def test_a_changed_password_ends_every_token(client, db, person):
    token = bearer(client, person)
    with db.session(write=True) as session, session.begin():
        session.execute(
            update(Account)
            .where(Account.id == person["account_id"])
            .values(password_hash=service.hash_password("a-new-password"))
        )
    after = client.get("/api/v1/cases", headers=token)
    assert after.status_code == 401 and after.json()["error"]["code"] == "token_revoked"
    fresh = bearer(client, {**person, "password": "a-new-password"})
    assert client.get("/api/v1/cases", headers=fresh).status_code == 200


def test_registration_answers_are_rationed_per_address(app, client, person, monkeypatch):
    monkeypatch.setattr(service, "REGISTER_LIMIT", 3)
    body = {"kind": "person", "name": "王五", "password": PASSWORD}
    with from_address(app, "198.51.100.20") as prober:
        answers = [
            prober.post(
                "/api/v1/accounts",
                json={**body, "id_number": make_ric(), "phone": phone},
            )
            for phone in (person["phone"], make_phone(), person["phone"], make_phone())
        ]
        assert [a.status_code for a in answers] == [409, 201, 409, 429]
        assert int(answers[-1].headers["Retry-After"]) > 0
        assert "注册尝试过于频繁" in answers[-1].json()["error"]["message"]
        # The page says the same, with the same status and header.
        page = prober.get("/register")
        form = prober.post(
            "/register",
            data={
                **body,
                "id_number": make_ric(),
                "phone": make_phone(),
                "privacy_consent": "true",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert form.status_code == 429 and int(form.headers["Retry-After"]) > 0
        assert "注册尝试过于频繁" in form.text
    # Another address is not held back.
    register(client)
