"""Security headers on every kind of answer, HSTS only over HTTPS; session cookies and timeouts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from portal.accounts.models import LoginSession
from portal.clock import utcnow
from tests.conftest import PDF_BYTES, csrf_of, jpeg_bytes, pick_item, register, web_login
from tests.factories import new_case, upload


def answers_of_every_kind(client: TestClient, person: dict, auth: dict) -> dict[str, object]:
    """One response of each kind a browser or an app can get from the portal."""
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    code = item["materials"][0]["code"]
    file_id = upload(client, auth, case_no, code, jpeg_bytes(), "p.jpg", "image/jpeg").json()["id"]
    pdf_id = upload(client, auth, case_no, code, PDF_BYTES, "p.pdf", "application/pdf").json()["id"]
    answers = {
        "redirect to login": client.get("/cases", follow_redirects=False),
        "API 401": client.get("/api/v1/cases"),
    }
    web_login(client, person)
    answers |= {
        "page": client.get("/"),
        "page of the account": client.get(f"/cases/{case_no}"),
        "API JSON": client.get("/api/v1/items"),
        "API JSON of the account": client.get(f"/api/v1/cases/{case_no}", headers=auth),
        "static file": client.get("/static/css/site.css"),
        "static file, versioned": client.get("/static/css/site.css?v=1"),
        "404 page": client.get("/no-such-page"),
        "404 static": client.get("/static/none.css"),
        "404 API": client.get("/api/v1/items/NOPE"),
        "405": client.delete("/api/v1/items"),
        "422 API": client.post("/api/v1/accounts", json={}),
        "422 page": client.post(
            "/register", data={"csrf_token": csrf_of(client.get("/register").text)}
        ),
        "403 CSRF": client.post("/logout", data={}),
        "redirect after a form": client.post(
            "/logout",
            data={"csrf_token": csrf_of(client.get("/account").text)},
            follow_redirects=False,
        ),
        "openapi": client.get("/openapi.json"),
        "health": client.get("/healthz"),
        "HEAD": client.head("/"),
    }
    web_login(client, person)
    answers |= {
        "file download": client.get(f"/cases/{case_no}/files/{file_id}"),
        "PDF download": client.get(f"/cases/{case_no}/files/{pdf_id}"),
        "thumbnail": client.get(f"/cases/{case_no}/files/{file_id}/thumb"),
        "500": client.get("/boom-for-headers"),
    }
    return answers


def directives(policy: str) -> dict[str, str]:
    return {part.strip().split()[0]: part.strip() for part in policy.split(";") if part.strip()}


INLINE_FILES = {"file download", "PDF download"}  # Chrome's PDF viewer is a plugin


def check(answers: dict, *, https: bool) -> None:
    kinds = {r.status_code for r in answers.values()}
    assert {200, 303, 401, 403, 404, 405, 422, 500} <= kinds
    for kind, response in answers.items():
        h = response.headers
        assert "content-security-policy" in h, kind
        csp = directives(h["content-security-policy"])
        assert csp.get("frame-ancestors") == "frame-ancestors 'none'", (kind, csp)
        expected_object = "object-src 'self'" if kind in INLINE_FILES else "object-src 'none'"
        assert csp.get("object-src") == expected_object, (kind, csp)
        if kind in INLINE_FILES:
            assert csp["default-src"] == "default-src 'none'", kind
            # An image is sandboxed; a PDF cannot be (a sandbox blocks Chrome's viewer).
            is_pdf = h["content-type"] == "application/pdf"
            assert ("sandbox" in csp) is not is_pdf, (kind, csp)
        else:
            assert "'unsafe-inline'" not in h["content-security-policy"], kind
        assert h.get("x-content-type-options") == "nosniff", kind
        assert h.get("referrer-policy") == "same-origin", kind
        assert h.get("x-frame-options") == "DENY", kind
        assert "x-request-id" in h, kind
        if https:
            assert h.get("strict-transport-security", "").startswith("max-age=31536000"), kind
        else:
            assert "strict-transport-security" not in h, kind


def with_boom(app):
    @app.get("/boom-for-headers", include_in_schema=False)
    def boom():
        raise RuntimeError("an unexpected failure")

    return app


def test_every_kind_of_answer_carries_the_headers_without_hsts_over_http(app, person, auth):
    with TestClient(with_boom(app), raise_server_exceptions=False) as client:
        check(answers_of_every_kind(client, person, auth), https=False)


def test_over_https_every_answer_adds_hsts(settings, person):
    from portal.app import create_app

    secure = settings.model_copy(update={"public_url": "https://zwfw.example.gov.cn"})
    app = with_boom(create_app(secure))
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        someone = register(client)
        from tests.conftest import bearer

        check(answers_of_every_kind(client, someone, bearer(client, someone)), https=True)


def test_private_answers_are_never_cached(client, person, auth):
    web_login(client, person)
    for path in ("/cases", "/account", "/api/v1/cases"):
        response = client.get(path, headers=auth)
        assert "no-store" in response.headers["cache-control"], path
    # Static files may be: they are the same for everyone.
    assert "public" in client.get("/static/css/site.css").headers["cache-control"]


# --- session cookies ----------------------------------------------------------------------


def login_cookie(client: TestClient, person: dict) -> str:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "phone": person["phone"],
            "password": person["password"],
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    (cookie,) = [c for c in cookies if c.startswith("portal_session=")]
    return cookie


def cookie_flags(cookie: str) -> set[str]:
    return {part.strip().lower() for part in cookie.split(";")[1:]}


def test_session_cookie_is_httponly_lax_and_not_secure_over_http(client, person):
    flags = cookie_flags(login_cookie(client, person))
    assert "httponly" in flags and "samesite=lax" in flags
    assert "secure" not in flags
    assert "max-age=43200" in flags  # the absolute limit: 12 hours


def test_session_cookie_is_secure_over_https(settings, person):
    from portal.app import create_app

    secure = settings.model_copy(update={"public_url": "https://zwfw.example.gov.cn"})
    with TestClient(create_app(secure), base_url="https://testserver") as client:
        flags = cookie_flags(login_cookie(client, person))
    assert {"httponly", "samesite=lax", "secure"} <= flags


def move_session(db, **ago: timedelta) -> None:
    values = {name: utcnow() - delta for name, delta in ago.items()}
    with db.session(write=True) as session, session.begin():
        session.execute(update(LoginSession).values(**values))


def logged_in(client) -> bool:
    response = client.get("/account", follow_redirects=False)
    assert response.status_code in (200, 303)
    return response.status_code == 200


@pytest.mark.parametrize(
    "ago,still_in",
    [
        ({"last_seen_at": timedelta(minutes=29)}, True),
        ({"last_seen_at": timedelta(minutes=31)}, False),
        ({"created_at": timedelta(hours=11, minutes=59), "last_seen_at": timedelta(0)}, True),
        ({"created_at": timedelta(hours=12, minutes=1), "last_seen_at": timedelta(0)}, False),
    ],
    ids=["idle-29m", "idle-31m", "age-11h59", "age-12h01"],
)
def test_idle_and_absolute_timeouts(client, person, db, ago, still_in):
    web_login(client, person)
    assert logged_in(client)
    move_session(db, **ago)
    assert logged_in(client) is still_in
    if not still_in:
        # Gone for good: the cookie alone does not bring the session back.
        move_session(db, created_at=timedelta(0), last_seen_at=timedelta(0))
        assert not logged_in(client)


def test_activity_keeps_an_idle_session_alive(client, person, db):
    web_login(client, person)
    move_session(db, last_seen_at=timedelta(minutes=20))
    assert logged_in(client)  # seen now: the idle clock starts again
    with db.session() as session:
        seen = session.scalars(select(LoginSession.last_seen_at)).one()
    assert utcnow() - seen < timedelta(minutes=1)


def test_logout_ends_the_session_on_the_server(client, person, db):
    web_login(client, person)
    stolen = client.cookies.get("portal_session")
    page = client.get("/account")
    client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    with db.session() as session:
        (login,) = session.scalars(select(LoginSession)).all()
    assert login.ended_at is not None
    client.cookies.set("portal_session", stolen)
    assert not logged_in(client)
    # A new login is a new session id, never the old one revived.
    client.cookies.clear()
    web_login(client, person)
    with db.session() as session:
        ids = set(session.scalars(select(LoginSession.id)))
    assert len(ids) == 2
