"""The staff sign-in of the reference back office: nobody locks a clerk out from elsewhere,
and signing out ends the sign-in on the server."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.bureau.bureau_testkit import STAFF_PASSWORD, STAFF_USER, Bureau, csrf_of


def at(bureau: Bureau, address: str) -> TestClient:
    """A browser on another computer (its own cookies, its own address)."""
    return TestClient(bureau.client.app, client=(address, 40000))


def sign_in(client: TestClient, password: str = STAFF_PASSWORD):
    page = client.get("/staff/login")
    return client.post(
        "/staff/login",
        data={"username": STAFF_USER, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def test_failures_from_other_addresses_never_lock_the_clerk_out(bureau: Bureau) -> None:
    for n in range(6):
        assert sign_in(at(bureau, f"198.51.100.{n + 1}"), "guess-guess").status_code == 401
    clerk = at(bureau, "10.1.2.3")
    assert sign_in(clerk).status_code == 303
    # One address that keeps failing waits, and only that one.
    attacker = at(bureau, "198.51.100.99")
    statuses = [sign_in(attacker, "guess-guess").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    locked = sign_in(attacker)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "登录失败次数过多" in locked.text
    assert sign_in(at(bureau, "10.1.2.3")).status_code == 303


def test_the_backstop_holds_many_addresses_but_not_the_clerks_own(bureau: Bureau) -> None:
    bureau.client.app.state.throttle.limits["user"] = 3
    assert sign_in(at(bureau, "10.1.2.3")).status_code == 303
    for n in range(3):
        sign_in(at(bureau, f"198.51.100.{n + 1}"), "guess-guess")
    elsewhere = sign_in(at(bureau, "198.51.100.50"))
    assert elsewhere.status_code == 429 and int(elsewhere.headers["retry-after"]) > 0
    assert sign_in(at(bureau, "10.1.2.3")).status_code == 303


def test_a_signed_out_cookie_is_worthless(bureau: Bureau) -> None:
    clerk = at(bureau, "10.1.2.3")
    assert sign_in(clerk).status_code == 303
    cookie = clerk.cookies.get("bureau_session")
    page = clerk.get("/staff/")
    assert page.status_code == 200
    other = at(bureau, "10.1.2.4")  # a second sign-in of the same clerk, elsewhere
    assert sign_in(other).status_code == 303
    clerk.post("/staff/logout", data={"csrf_token": csrf_of(page.text)})
    replay = at(bureau, "10.1.2.3")
    replay.cookies.set("bureau_session", cookie)
    answer = replay.get("/staff/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/staff/login")
    # Signing out here does not sign the other computer out.
    assert other.get("/staff/", follow_redirects=False).status_code == 200
