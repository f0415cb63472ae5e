"""Forms survive a session timeout, through HTTP.

A login times out after PORTAL_SESSION_IDLE_MINUTES without a request; the tests move
the login's last request back past that, as the clock would, then post the form.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select, update

from portal.accounts.models import Authorisation, KeptForm, LoginSession
from portal.cases.models import Case
from portal.clock import today_cst, utcnow
from tests.conftest import csrf_of, make_uscc, pick_item, register, web_login
from tests.kit import an_item

RESTORED = "您的登录已超时，刚才填写的内容已为您保留，请核对后重新提交"
TIMED_OUT = "您的登录已超时，请重新登录"


def time_out(db, settings, account_id: int) -> None:
    """Every login of the account last seen just past the idle timeout."""
    past = utcnow() - timedelta(minutes=settings.session_idle_minutes + 1)
    with db.session(write=True) as session, session.begin():
        session.execute(
            update(LoginSession)
            .where(LoginSession.account_id == account_id)
            .values(last_seen_at=past)
        )


def new_draft(client, item) -> tuple[str, str]:
    """A draft made on the item page; its form page's URL path and HTML."""
    page = client.get(f"/items/{item['code']}")
    form = client.post("/cases", data={"csrf_token": csrf_of(page.text), "item_code": item["code"]})
    assert form.status_code == 200 and form.url.path.endswith("/form"), form.text[:300]
    return form.url.path, form.text


def text_field(item) -> dict:
    return next(f for f in item["fields"] if f["type"] == "text" and f["name"] != "uscc")


def next_of(response) -> str:
    location = response.headers["location"]
    assert location.startswith("/login?"), location
    return parse_qs(urlsplit(location).query)["next"][0]


def log_in(client, person, next_url: str):
    page = client.get("/login", params={"next": next_url})
    return client.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "phone": person["phone"],
            "password": person["password"],
            "next": next_url,
        },
        follow_redirects=False,
    )


def stored_form(db, path: str) -> dict:
    case_no = path.split("/")[2]
    with db.session() as session:
        return session.scalars(select(Case.form).where(Case.case_no == case_no)).one()


def test_a_form_posted_after_the_timeout_is_kept_and_restored_after_sign_in(
    client, person, db, settings
):
    web_login(client, person)
    item = pick_item(client)
    path, html = new_draft(client, item)
    spec = text_field(item)
    before = stored_form(db, path)
    time_out(db, settings, person["account_id"])

    posted = client.post(
        path,
        data={"csrf_token": csrf_of(html), f"form.{spec['name']}": "武进区湖塘镇花园街 8 号"},
        follow_redirects=False,
    )
    assert posted.status_code == 303
    target = next_of(posted)
    assert target.startswith(f"{path}?kept=")
    login_page = client.get(posted.headers["location"])
    assert TIMED_OUT in login_page.text
    assert stored_form(db, path) == before  # nothing saved for the citizen

    signed_in = log_in(client, person, target)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == target
    restored = client.get(target)
    assert restored.status_code == 200
    assert RESTORED in restored.text
    assert 'value="武进区湖塘镇花园街 8 号"' in restored.text
    assert stored_form(db, path) == before  # shown, never submitted for them

    # The citizen checks and sends it with the new session's token: saved as usual.
    saved = client.post(
        path,
        data={
            "csrf_token": csrf_of(restored.text),
            f"form.{spec['name']}": "武进区湖塘镇花园街 8 号",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert stored_form(db, path)[spec["name"]] == "武进区湖塘镇花园街 8 号"


def test_the_kept_form_comes_back_only_for_the_account_that_typed_it(client, app, db, settings):
    from fastapi.testclient import TestClient

    uscc = make_uscc()
    company = register(client, kind="enterprise", name="武进恢复测试有限公司", id_number=uscc)
    agent = register(client, name="吴经办")
    with db.session(write=True) as session, session.begin():
        session.add(
            Authorisation(
                enterprise_id=company["account_id"],
                agent_id=agent["account_id"],
                items=None,
                valid_to=today_cst() + timedelta(days=30),
            )
        )
    item = an_item(client, has=("uscc",))
    web_login(client, agent)
    page = client.get(f"/items/{item['code']}")
    form = client.post(
        "/cases",
        data={"csrf_token": csrf_of(page.text), "item_code": item["code"], "on_behalf_of": uscc},
    )
    path = form.url.path
    spec = text_field(item)
    time_out(db, settings, agent["account_id"])
    posted = client.post(
        path,
        data={"csrf_token": csrf_of(form.text), f"form.{spec['name']}": "只给经办人看的内容"},
        follow_redirects=False,
    )
    target = next_of(posted)
    assert "kept=" in target

    # The enterprise may open the case's form (filed in its name), but not the agent's
    # kept values, even with the reference in hand.
    company_browser = TestClient(app)
    assert log_in(company_browser, company, target).status_code == 303
    theirs = company_browser.get(target)
    assert theirs.status_code == 200
    assert "只给经办人看的内容" not in theirs.text and RESTORED not in theirs.text

    assert log_in(client, agent, target).status_code == 303
    assert "只给经办人看的内容" in client.get(target).text


def test_a_post_without_the_sessions_token_or_session_keeps_nothing(
    client, app, person, db, settings
):
    from fastapi.testclient import TestClient

    web_login(client, person)
    item = pick_item(client)
    path, html = new_draft(client, item)
    spec = text_field(item)
    time_out(db, settings, person["account_id"])
    forged = client.post(
        path, data={"csrf_token": "x" * 43, f"form.{spec['name']}": "伪造"}, follow_redirects=False
    )
    assert forged.status_code == 303 and next_of(forged) == path  # back to the page, nothing kept
    stranger = TestClient(app)  # a post from elsewhere: no session cookie at all
    cold = stranger.post(
        path,
        data={"csrf_token": csrf_of(html), f"form.{spec['name']}": "伪造"},
        follow_redirects=False,
    )
    assert cold.status_code == 303 and "kept" not in cold.headers["location"]
    with db.session() as session:
        assert session.scalars(select(KeptForm)).all() == []


def test_passwords_and_tokens_are_never_kept_and_a_kept_form_expires(client, person, db, settings):
    web_login(client, person)
    item = pick_item(client)
    path, html = new_draft(client, item)
    spec = text_field(item)
    time_out(db, settings, person["account_id"])
    posted = client.post(
        path,
        data={
            "csrf_token": csrf_of(html),
            f"form.{spec['name']}": "会过期的内容",
            "password": "should-never-be-kept",
        },
        follow_redirects=False,
    )
    target = next_of(posted)
    with db.session() as session:
        (kept,) = session.scalars(select(KeptForm)).all()
        names = [name for name, _ in kept.data["fields"]]
    assert "password" not in names and "csrf_token" not in names
    assert f"form.{spec['name']}" in names

    tampered = target[:-3] + ("abc" if not target.endswith("abc") else "xyz")
    assert log_in(client, person, tampered).status_code == 303
    assert "会过期的内容" not in client.get(tampered).text

    with db.session(write=True) as session, session.begin():
        session.execute(update(KeptForm).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = client.get(target)
    assert expired.status_code == 200 and "会过期的内容" not in expired.text


def test_a_button_posted_after_the_timeout_leads_back_to_its_page_not_a_405(
    client, person, db, settings
):
    web_login(client, person)
    item = pick_item(client, prereview=True)
    path, _ = new_draft(client, item)
    case_path = path.removesuffix("/form")
    review = client.get(f"{case_path}/review")
    time_out(db, settings, person["account_id"])
    pressed = client.post(
        f"{case_path}/prereview",
        data={"csrf_token": csrf_of(review.text)},
        headers={"Referer": f"http://testserver{case_path}/review"},
        follow_redirects=False,
    )
    assert next_of(pressed) == f"{case_path}/review"
    assert log_in(client, person, next_of(pressed)).headers["location"] == f"{case_path}/review"
    assert client.get(f"{case_path}/review").status_code == 200


def test_logged_in_pages_warn_before_the_idle_timeout(client, person, settings):
    anonymous = client.get("/")
    assert 'id="idle-warning"' not in anonymous.text
    web_login(client, person)
    page = client.get("/account")
    box = re.search(r'<div[^>]*id="idle-warning"[^>]*>', page.text)
    assert box and f'data-idle="{settings.session_idle_minutes}"' in box.group(0)
    assert " hidden" in box.group(0)  # shown by the script only; nothing without JS
    script = re.search(r'<script src="(/static/js/idle\.js[^"]*)"', page.text)
    assert script and client.get(unescape(script.group(1))).status_code == 200


def test_the_daily_retention_run_deletes_kept_forms_past_their_time(
    client, app, person, db, settings
):
    from portal.retention.service import purge

    web_login(client, person)
    item = pick_item(client)
    path, html = new_draft(client, item)
    time_out(db, settings, person["account_id"])
    spec = text_field(item)
    client.post(
        path,
        data={"csrf_token": csrf_of(html), f"form.{spec['name']}": "留一会儿"},
        follow_redirects=False,
    )
    purge(db, app.state.store, settings)
    with db.session() as session:
        assert len(session.scalars(select(KeptForm)).all()) == 1  # still within its time
    with db.session(write=True) as session, session.begin():
        session.execute(update(KeptForm).values(expires_at=utcnow() - timedelta(seconds=1)))
    purge(db, app.state.store, settings)
    with db.session() as session:
        assert session.scalars(select(KeptForm)).all() == []
