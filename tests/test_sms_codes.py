"""SMS one-time codes (identity.md §1), through HTTP: registration, login and password
resets with a code, the same answer for registered and unregistered phones, each limit
with Retry-After, 5 wrong tries, purposes kept apart, and a code that leaves at once
while 200 notification SMS wait in the outbox."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from portal.accounts.models import Account
from portal.clock import utcnow
from portal.composition import build_dispatcher
from portal.exchange.models import OutboxMessage
from portal.exchange.outbox import enqueue_job
from portal.verification.models import SmsCode
from tests.conftest import (
    DEV_CODES,
    PASSWORD,
    bearer,
    csrf_of,
    make_phone,
    make_ric,
    register,
    sms_code,
)
from tests.kit import expire_blocks
from tests.live import ThreadServer, free_port

NEW_PASSWORD = "another-horse-7"


@pytest.fixture
def settings(settings):
    """Registration needs a code here, as in production (PORTAL_REGISTER_NEEDS_CODE)."""
    return settings.model_copy(update={"register_needs_code": True})


def ask(client, phone, purpose="login", **headers):
    return client.post(
        "/api/v1/verifications", json={"phone": phone, "purpose": purpose}, headers=headers
    )


def new_body(**overrides):
    return {
        "kind": "person",
        "name": "王五",
        "id_number": make_ric(),
        "phone": make_phone(),
        "password": PASSWORD,
        **overrides,
    }


# --- registration --------------------------------------------------------------------------


def test_register_needs_the_register_code(client, db):
    body = new_body()
    missing = client.post("/api/v1/accounts", json=body)
    assert missing.status_code == 422
    assert "验证码" in missing.json()["error"]["fields"]["code"]

    code = sms_code(client, body["phone"], "register")
    wrong = "000000" if code != "000000" else "111111"
    bad = client.post("/api/v1/accounts", json={**body, "code": wrong})
    assert bad.status_code == 422
    assert "验证码不正确" in bad.json()["error"]["fields"]["code"]
    assert client.post("/api/v1/accounts", json={**body, "code": "12345"}).status_code == 422

    made = client.post("/api/v1/accounts", json={**body, "code": code})
    assert made.status_code == 201, made.text
    with db.session() as session:
        account = session.get(Account, made.json()["account_id"])
        assert account.phone_verified_at is not None
        # Only the keyed hash is stored: the code appears nowhere in the database's rows.
        row = session.scalars(select(SmsCode).where(SmsCode.phone == body["phone"])).one()
        assert code not in row.code_hash and row.used_at is not None
        for message in session.scalars(select(OutboxMessage)):
            assert code not in message.payload
    # Used once: the same code cannot register another account.
    again = client.post(
        "/api/v1/accounts", json=new_body(phone=body["phone"], id_number=make_ric(), code=code)
    )
    assert again.status_code == 422


def test_the_text_has_the_code_as_its_only_six_digits():
    from portal.verification.sms import code_text

    for purpose in ("register", "login", "reset"):
        text = code_text(purpose, "042917")
        assert re.findall(r"\d{6,}", text) == ["042917"]


# --- same answer ---------------------------------------------------------------------------


def test_same_answer_whether_or_not_the_phone_is_registered(client, db):
    person = register(client)
    expire_blocks(db, "sms:")  # the registration's own code
    stranger = make_phone()
    for purpose in ("register", "login", "reset"):
        known = ask(client, person["phone"], purpose)
        unknown = ask(client, stranger, purpose)
        assert known.status_code == unknown.status_code == 202
        assert known.json() == unknown.json() == {"expires_in": 300, "resend_after": 60}
        assert set(known.headers) == set(unknown.headers)
        # And the limits count both alike.
        assert ask(client, person["phone"], purpose).status_code == 429
        assert ask(client, stranger, purpose).status_code == 429


def test_bad_requests_are_422_in_chinese(client):
    for body in (
        {"phone": "12345", "purpose": "login"},
        {"phone": make_phone(), "purpose": "shopping"},
        {"phone": make_phone()},
    ):
        answer = client.post("/api/v1/verifications", json=body)
        assert answer.status_code == 422
        assert re.search(r"[\u4e00-\u9fff]", answer.json()["error"]["message"])


# --- limits --------------------------------------------------------------------------------


def test_one_code_per_phone_and_purpose_per_minute(client, db):
    phone = make_phone()
    assert ask(client, phone, "register").status_code == 202
    again = ask(client, phone, "register")
    assert again.status_code == 429
    assert 1 <= int(again.headers["Retry-After"]) <= 60
    assert "分钟" in again.json()["error"]["message"]
    # Another purpose is another minute.
    assert ask(client, phone, "login").status_code == 202
    expire_blocks(db, f"sms:phone-purpose:{phone}:register")
    assert ask(client, phone, "register").status_code == 202


def test_five_codes_per_phone_per_hour(client, db):
    phone = make_phone()
    for n in range(5):
        assert ask(client, phone, ["register", "login", "reset"][n % 3]).status_code == 202
        expire_blocks(db, f"sms:phone-purpose:{phone}")
    sixth = ask(client, phone, "register")
    assert sixth.status_code == 429
    assert 3000 < int(sixth.headers["Retry-After"]) <= 3600


def test_codes_per_client_address_per_hour(app, client, db):
    limit = app.state.settings.sms_codes_per_address_hour
    assert limit == 20
    for _ in range(limit):
        assert ask(client, make_phone()).status_code == 202
    over = ask(client, make_phone())
    assert over.status_code == 429
    assert 3000 < int(over.headers["Retry-After"]) <= 3600
    assert "本网络" in over.json()["error"]["message"]


def test_the_address_limit_is_a_setting(settings):
    from fastapi.testclient import TestClient

    from portal.app import create_app

    roomy = settings.model_copy(update={"sms_codes_per_address_hour": 25})
    with TestClient(create_app(roomy)) as client:
        for _ in range(25):
            assert ask(client, make_phone()).status_code == 202
        assert ask(client, make_phone()).status_code == 429


# --- tries and purposes --------------------------------------------------------------------


def test_five_wrong_tries_void_the_code(client, db):
    person = register(client)
    code = sms_code(client, person["phone"], "login")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for n in range(5):
        answer = client.post("/api/v1/tokens", json={"phone": person["phone"], "code": wrong})
        # The fifth is also the login throttle's fifth failure (429 with Retry-After).
        assert answer.status_code == (401 if n < 4 else 429)
    expire_blocks(db, "login:")
    # The right code no longer works: it is void.
    late = client.post("/api/v1/tokens", json={"phone": person["phone"], "code": code})
    assert late.status_code == 401
    with db.session() as session:
        row = session.scalars(select(SmsCode).where(SmsCode.purpose == "login")).one()
        assert row.tries == 5 and row.voided_at is not None


def test_login_with_a_code(client):
    person = register(client)
    code = sms_code(client, person["phone"], "login")
    answer = client.post("/api/v1/tokens", json={"phone": person["phone"], "code": code})
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['token']}"}
    assert client.get("/api/v1/cases", headers=headers).status_code == 200
    # Once only.
    assert (
        client.post("/api/v1/tokens", json={"phone": person["phone"], "code": code}).status_code
        == 401
    )
    # Password or code, not both, not neither.
    both = {"phone": person["phone"], "password": PASSWORD, "code": code}
    assert client.post("/api/v1/tokens", json=both).status_code == 422
    assert client.post("/api/v1/tokens", json={"phone": person["phone"]}).status_code == 422


def test_a_code_for_one_purpose_fails_another(client, db):
    person = register(client)
    reset_code = sms_code(client, person["phone"], "reset")
    login = client.post("/api/v1/tokens", json={"phone": person["phone"], "code": reset_code})
    assert login.status_code == 401
    expire_blocks(db, "sms:")  # the registration's own code was a minute ago
    register_code = sms_code(client, person["phone"], "register")
    reset = client.post(
        "/api/v1/password-resets",
        json={"phone": person["phone"], "code": register_code, "password": NEW_PASSWORD},
    )
    assert reset.status_code == 422 and "code" in reset.json()["error"]["fields"]


def test_a_new_code_voids_the_previous_one(client, db):
    person = register(client)
    first = sms_code(client, person["phone"], "login")
    expire_blocks(db, f"sms:phone-purpose:{person['phone']}")
    second = sms_code(client, person["phone"], "login")
    old = client.post("/api/v1/tokens", json={"phone": person["phone"], "code": first})
    assert first == second or old.status_code == 401
    new = client.post("/api/v1/tokens", json={"phone": person["phone"], "code": second})
    assert new.status_code == 200


def test_an_expired_code_fails(client, db):
    person = register(client)
    code = sms_code(client, person["phone"], "login")
    with db.session(write=True) as session, session.begin():
        session.execute(update(SmsCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    answer = client.post("/api/v1/tokens", json={"phone": person["phone"], "code": code})
    assert answer.status_code == 401


# --- password reset ------------------------------------------------------------------------


def test_reset_ends_every_token_and_session(client, db):
    from tests.conftest import web_login

    person = register(client)
    tokens = [bearer(client, person) for _ in range(2)]
    web_login(client, person)
    assert client.get("/account").status_code == 200
    code = sms_code(client, person["phone"], "reset")
    short = client.post(
        "/api/v1/password-resets", json={"phone": person["phone"], "code": code, "password": "x"}
    )
    assert short.status_code == 422 and "password" in short.json()["error"]["fields"]
    done = client.post(
        "/api/v1/password-resets",
        json={"phone": person["phone"], "code": code, "password": NEW_PASSWORD},
    )
    assert done.status_code == 204, done.text
    for headers in tokens:
        assert client.get("/api/v1/cases", headers=headers).status_code == 401
    assert client.get("/account", follow_redirects=False).status_code in (302, 303, 401)
    old = client.post("/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD})
    assert old.status_code == 401
    new = client.post("/api/v1/tokens", json={"phone": person["phone"], "password": NEW_PASSWORD})
    assert new.status_code == 200


def test_reset_for_an_unknown_phone_is_a_wrong_code(client):
    answer = client.post(
        "/api/v1/password-resets",
        json={"phone": make_phone(), "code": "123456", "password": NEW_PASSWORD},
    )
    assert answer.status_code == 422 and "code" in answer.json()["error"]["fields"]


# --- pages, without JavaScript -------------------------------------------------------------


def _code_after(before: int) -> str:
    assert len(DEV_CODES.codes) > before
    return DEV_CODES.codes[-1]


def test_register_page_sends_the_code_and_comes_back_filled(client, db):
    page = client.get("/register")
    assert "获取验证码" in page.text and 'formaction="/register/code"' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "kind": "person",
        "name": "赵六",
        "id_number": make_ric(),
        "phone": make_phone(),
        "password": PASSWORD,
        "privacy_consent": "true",
    }
    before = len(DEV_CODES.codes)
    sent = client.post("/register/code", data=form)
    assert sent.status_code == 200
    assert "验证码已发送至" in sent.text and form["id_number"] in sent.text
    assert PASSWORD not in sent.text  # never echoed back
    code = _code_after(before)
    wrong = client.post("/register", data={**form, "code": "000000" if code != "000000" else "1"})
    assert wrong.status_code == 422 and "验证码" in wrong.text
    missing = client.post("/register", data=form)
    assert missing.status_code == 422 and "请填写短信验证码" in missing.text
    done = client.post("/register", data={**form, "code": code}, follow_redirects=False)
    assert done.status_code == 303


def test_login_page_offers_a_code_and_password_reset(client):
    person = register(client)
    login = client.get("/login")
    assert "短信验证码登录" in login.text and "/password-reset" in login.text
    page = client.get("/login/code")
    assert page.status_code == 200
    form = {"csrf_token": csrf_of(page.text), "phone": person["phone"], "next": "/cases"}
    before = len(DEV_CODES.codes)
    sent = client.post("/login/code/send", data=form)
    assert sent.status_code == 200 and "验证码已发送至" in sent.text
    code = _code_after(before)
    again = client.post("/login/code/send", data=form)
    assert again.status_code == 429 and "Retry-After" in again.headers
    bad = client.post("/login/code", data={**form, "code": "12"})
    assert bad.status_code == 422
    done = client.post("/login/code", data={**form, "code": code}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/cases"
    # Without the CSRF token: 403.
    assert (
        client.post("/login/code", data={"phone": person["phone"], "code": code}).status_code == 403
    )


def test_forgotten_password_page(client):
    person = register(client)
    page = client.get("/password-reset")
    form = {"csrf_token": csrf_of(page.text), "phone": person["phone"]}
    before = len(DEV_CODES.codes)
    assert client.post("/password-reset/send", data=form).status_code == 200
    code = _code_after(before)
    done = client.post(
        "/password-reset",
        data={**form, "code": code, "password": NEW_PASSWORD},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert "密码已重置" in client.get("/login").text
    assert bearer(client, {**person, "password": NEW_PASSWORD})


def test_production_without_a_gateway_says_code_sign_in_is_off(settings):
    from fastapi.testclient import TestClient

    from portal.app import create_app

    production = settings.model_copy(update={"env": "production"})
    with TestClient(create_app(production)) as client:
        answer = ask(client, make_phone(), "login")
        assert answer.status_code == 503
        assert "短信验证码服务暂未开通" in answer.json()["error"]["message"]
        page = client.get("/login/code")
        assert "短信验证码服务暂未开通" in page.text and "<form" not in page.text.split("<main")[1]


# --- the fast path, on a real server -------------------------------------------------------


class SlowGateway:
    """A loopback SMS gateway taking `delay` seconds per message; records arrival times."""

    def __init__(self, delay: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/sms"
        self.delay = delay
        self.arrivals: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with gateway.lock:
                    gateway.arrivals.append((time.monotonic(), body))
                if body["type"] != "verification":
                    time.sleep(gateway.delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.timeout(120)
def test_a_code_leaves_within_2_seconds_while_200_notifications_wait(settings, db):
    import httpx

    from portal.app import create_app

    with SlowGateway(delay=0.25) as gateway:
        live = settings.model_copy(
            update={"sms_gateway_url": gateway.url, "dispatcher": True, "env": "production"}
        )
        # 200 notification SMS, queued before the code is asked for: at 16 in flight and
        # 0.25 s each they take the dispatcher over 3 seconds.
        with db.session(write=True) as session, session.begin():
            for n in range(200):
                enqueue_job(
                    session,
                    kind="sms",
                    ordering_key=f"sms:{n}",
                    payload={"type": "case.accepted", "to": make_phone(), "text": "您的办件已受理"},
                )
        app = create_app(live)
        with ThreadServer(app) as server, httpx.Client(base_url=server.url) as client:
            phone = make_phone()
            asked = time.monotonic()
            answer = client.post(
                "/api/v1/verifications", json={"phone": phone, "purpose": "register"}
            )
            assert answer.status_code == 202
            deadline = asked + 10
            while time.monotonic() < deadline:
                with gateway.lock:
                    codes = [(t, b) for t, b in gateway.arrivals if b["type"] == "verification"]
                if codes:
                    break
                time.sleep(0.02)
            assert codes, "the verification SMS never arrived"
            [(arrived, body)] = codes
            assert arrived - asked < 2.0, f"took {arrived - asked:.2f} s"
            with gateway.lock:
                waiting = sum(1 for t, b in gateway.arrivals if b["type"] != "verification")
            assert waiting < 200, "the notifications were not queued behind it"
            assert body["to"] == phone and body["case_no"] is None
            [code] = re.findall(r"\d{6}", body["text"])
            made = client.post(
                "/api/v1/accounts", json=new_body(phone=phone, code=code, name="孙七")
            )
            assert made.status_code == 201, made.text
    with db.session() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "sms_code")).one()
        assert row.status == "delivered" and "sealed" not in row.payload


@pytest.mark.timeout(60)
def test_a_gateway_error_is_retried_by_the_dispatcher(settings, db):
    """The direct try fails (503): the outbox row is the fallback, sent while valid."""
    from fastapi.testclient import TestClient

    from portal.app import create_app

    failures = {"left": 1}
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status = 503 if failures["left"] else 200
            if failures["left"]:
                failures["left"] -= 1
            else:
                got.append(body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live = settings.model_copy(
            update={
                "sms_gateway_url": f"http://127.0.0.1:{port}/sms",
                "retry_first_seconds": 0.05,
            }
        )
        with TestClient(create_app(live)) as client:
            assert ask(client, make_phone(), "register").status_code == 202
        assert got == []  # the direct try failed
        dispatcher = build_dispatcher(live, db)

        async def drain():
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                await dispatcher.run_once()
                await asyncio.sleep(0.1)

        async def run():
            dispatcher._loop = asyncio.get_running_loop()
            import httpx

            async with httpx.AsyncClient() as client:
                dispatcher.client = client
                await drain()

        asyncio.run(run())
        assert len(got) == 1 and got[0]["type"] == "verification"
    finally:
        server.shutdown()
        server.server_close()
