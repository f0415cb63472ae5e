"""The identity journey on a phone (375×812), axe on every page, real servers.

Register with an SMS code (consent ticked); forget the password and reset it; sign in
through the reference identity platform as a level-3 person whose number that first
account had typed in (consent page first); as a legal person, authorise her for two
items; as the agent, switch to the company and file one of them (the form arrives
filled with the company's data); the company revokes; the agent can no longer submit.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from idp.app import create_app as create_idp
from idp.identities import BY_KEY
from portal.app import create_app
from portal.clock import today_cst
from tests.browser.conftest import check_page
from tests.conftest import DEV_CODES, PASSWORD, PDF_BYTES, make_phone, valid_form
from tests.idp.flow import CLIENT_ID, CLIENT_SECRET, idp_settings
from tests.kit import code_token, portal_settings
from tests.kit_browser import new_phone
from tests.live import ThreadServer, free_port

pytestmark = pytest.mark.browser

LINA, HUIMIN = BY_KEY["lina"], BY_KEY["huimin"]


class On:
    def __init__(self, url: str) -> None:
        self.url = url


def code_after(before: int) -> str:
    return DEV_CODES.after(before)


def sso_sign_in(page, portal, platform, key: str, name: str) -> None:
    """Portal login → platform → the portal's consent page → signed in."""
    page.goto(f"{portal}/login?next=/account")
    page.get_by_role("link", name="统一身份认证登录").click()
    page.wait_for_url(f"{platform}/authorize?*")
    page.get_by_label(BY_KEY[key].name, exact=False).check()
    page.locator("#password").fill(BY_KEY[key].password)
    page.get_by_role("button", name="同意授权并登录").click()
    page.wait_for_url(f"{portal}/login/sso/consent")
    check_page(page, f"identity-{name}-consent")
    page.get_by_role("button", name="同意并继续").click()  # not ticked: said next to the box
    assert page.locator("#f-privacy_consent-error").is_visible()
    check_page(page, f"identity-{name}-consent-error")
    page.check("#f-privacy_consent")
    page.get_by_role("button", name="同意并继续").click()
    page.wait_for_url(f"{portal}/account")


def formal_items(api: httpx.Client, n: int) -> list[dict]:
    codes = [
        s["code"]
        for s in api.get("/api/v1/items").json()["items"]
        if not s["prereview"] and s["online"]
    ]
    assert len(codes) >= n
    return [api.get(f"/api/v1/items/{c}").json() for c in codes[:n]]


def test_register_reset_sso_authorise_file_and_revoke(browser, tmp_path, database_url):
    portal_port, idp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    callback = f"http://127.0.0.1:{portal_port}/login/sso/callback"
    settings = portal_settings(
        tmp_path,
        database_url,
        portal_port,
        sso_issuer=issuer,
        sso_client_id=CLIENT_ID,
        sso_client_secret=CLIENT_SECRET,
    ).model_copy(update={"register_needs_code": True})
    with (
        ThreadServer(
            create_idp(idp_settings(tmp_path / "idp", issuer, [callback])), idp_port
        ) as idp,
        ThreadServer(create_app(settings), portal_port) as server,
    ):
        base, platform = server.url, idp.url
        pages = []

        # 1. Register with a code, typing in the number that is lina's.
        typist = new_phone(browser, javascript=True)
        pages.append(typist)
        phone = make_phone()
        typist.goto(base + "/register")
        check_page(typist, "identity-01-register")
        typist.fill("#f-name", "李娜")
        typist.fill("#f-id_number", LINA.id_number)
        typist.fill("#f-phone", phone)
        before = len(DEV_CODES.codes)
        typist.click("button:text-is('获取验证码')")
        typist.wait_for_selector("#code-notice")
        typist.fill("#f-code", code_after(before))
        typist.fill("#f-password", PASSWORD)
        typist.click("main form button:visible:text-is('注册')")  # consent not ticked yet
        assert typist.locator("#f-privacy_consent-error").is_visible()
        check_page(typist, "identity-02-register-consent-error")
        # What was typed came back (the code too, not used yet); the password is typed again.
        assert typist.input_value("#f-id_number") == LINA.id_number
        typist.fill("#f-password", PASSWORD)
        typist.check("#f-privacy_consent")
        typist.click("main form button:visible:text-is('注册')")
        typist.wait_for_url(re.compile(r"/cases$"))
        check_page(typist, "identity-03-registered")

        # 2. Forget the password and reset it.
        typist.click("header button:text-is('退出')")
        typist.goto(base + "/login")
        typist.click("text=忘记密码？")
        typist.wait_for_url("**/password-reset")
        check_page(typist, "identity-04-reset")
        typist.fill("#f-phone", phone)
        before = len(DEV_CODES.codes)
        typist.click("button:text-is('获取验证码')")
        typist.wait_for_selector("#code-notice")
        typist.fill("#f-code", code_after(before))
        typist.fill("#f-password", "a-new-pass-2026")
        typist.click("main form button:visible:text-is('重置密码')")
        typist.wait_for_url(re.compile(r"/login"))
        check_page(typist, "identity-05-reset-done")
        typist.fill("#f-phone", phone)
        typist.fill("#f-password", "a-new-pass-2026")
        typist.click("main form button:text-is('登录')")
        typist.wait_for_url(re.compile(r"/cases$"))

        # 3. lina signs in through the platform (level 3): the number moves to her account.
        agent = new_phone(browser, javascript=True)
        pages.append(agent)
        sso_sign_in(agent, base, platform, "lina", "05-lina")
        assert "已通过统一身份认证核验，3 级" in agent.content()
        check_page(agent, "identity-06-lina-account")
        typist.goto(base + "/account")
        assert "已移除" in typist.content()  # the typist's account lost the number
        check_page(typist, "identity-07-number-moved")

        # 4. The legal person authorises lina for two items.
        agent_api = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {code_token(On(base), LINA.phone)}"},
            timeout=30,
        )
        first, second = formal_items(agent_api, 2)
        company = new_phone(browser, javascript=True)
        pages.append(company)
        sso_sign_in(company, base, platform, "huimin", "08-huimin")
        company.goto(base + "/account/authorisations")
        check_page(company, "identity-09-authorisations")
        company.fill("#f-agent_phone", LINA.phone)
        company.check("#f-scope-2")
        company.check(f"#item-{first['code']}")
        company.check(f"#item-{second['code']}")
        company.fill("#f-valid_to", (today_cst() + timedelta(days=90)).isoformat())
        company.click("main button:text-is('确认授权')")
        company.wait_for_selector("text=已授权")
        check_page(company, "identity-10-granted")

        # 5. The agent switches to the company and files the first item.
        agent.goto(f"{base}/items/{first['code']}")
        agent.get_by_label(f"代 {HUIMIN.name} 办理").check()
        check_page(agent, "identity-11-item-as-company")
        agent.click("text=在线申请")
        agent.wait_for_url("**/form")
        check_page(agent, "identity-12-form-prefilled")
        for spec, value in valid_form(first).items():
            box = agent.locator(f"[id='f-form.{spec}']")
            kind = next(f["type"] for f in first["fields"] if f["name"] == spec)
            if kind == "uscc":
                assert box.input_value() == HUIMIN.id_number  # prefilled: the company's
            elif spec == "contact_phone":
                assert box.input_value() == LINA.phone  # the agent's, to be called back
            elif kind == "select":
                box.select_option(value)
            elif kind == "checkbox":
                box.check()
            elif not box.input_value():
                box.fill(str(value))
        agent.click("main button:text-is('保存并继续')")
        agent.wait_for_url("**/cases/WJ*")
        case_no = re.search(r"/cases/(WJ\d+)", agent.url).group(1)
        for m in first["materials"]:
            if m["required"]:
                answer = agent_api.post(
                    f"/api/v1/cases/{case_no}/materials/{m['code']}/files",
                    files={"file": ("扫描件.pdf", PDF_BYTES, "application/pdf")},
                )
                assert answer.status_code == 201, answer.text
        agent.goto(f"{base}/cases/{case_no}/review")
        assert HUIMIN.name in agent.content()
        check_page(agent, "identity-13-review-as-agent")
        agent.click("main button:text-is('确认并提交申请')")
        agent.wait_for_url(f"**/cases/{case_no}/submitted")
        check_page(agent, "identity-14-submitted")

        # A draft of the second item, filled in, before the company changes its mind.
        draft = agent_api.post(
            "/api/v1/cases",
            json={"item_code": second["code"], "on_behalf_of": HUIMIN.id_number},
        )
        assert draft.status_code == 201, draft.text
        draft_no = draft.json()["case_no"]
        assert agent_api.patch(
            f"/api/v1/cases/{draft_no}", json={"form": valid_form(second)}
        ).is_success
        for m in second["materials"]:
            if m["required"]:
                assert agent_api.post(
                    f"/api/v1/cases/{draft_no}/materials/{m['code']}/files",
                    files={"file": ("扫描件.pdf", PDF_BYTES, "application/pdf")},
                ).is_success

        # 6. Revoked; the agent can no longer submit.
        company.goto(base + "/account/authorisations")
        company.click("main button:has-text('撤销授权')")
        company.wait_for_selector("text=已撤销授权")
        check_page(company, "identity-15-revoked")
        agent.goto(f"{base}/items/{second['code']}")
        assert f"代 {HUIMIN.name} 办理" not in agent.content()
        agent.goto(f"{base}/cases/{draft_no}/review")
        check_page(agent, "identity-16-review-after-revoke")
        submit = agent.locator("main button:text-is('确认并提交申请')")
        if submit.count():
            submit.click()
            agent.wait_for_load_state()
        assert "已撤销或已过期" in agent.content()
        check_page(agent, "identity-17-refused")
        assert agent_api.get(f"/api/v1/cases/{draft_no}").json()["status"] == "draft"

        for page in pages:
            assert page.outside_requests == [], page.outside_requests
            page.context.close()


@pytest.fixture
def server(app):
    with ThreadServer(app) as live:
        yield live


def test_a_warning_two_minutes_before_the_idle_timeout(server, client, phone, settings):
    from tests.conftest import register

    person = register(client)
    page = phone
    page.clock.install()
    page.goto(server.url + "/login")
    page.fill("#f-phone", person["phone"])
    page.fill("#f-password", person["password"])
    page.click("main form button:text-is('登录')")
    page.wait_for_url(re.compile(r"/cases$"))
    warning = page.locator("#idle-warning")
    assert warning.is_hidden()
    page.clock.fast_forward((settings.session_idle_minutes - 2) * 60_000 + 5_000)
    assert warning.is_visible() and "2 分钟后超时" in warning.inner_text()
    check_page(page, "identity-18-idle-warning")
    page.get_by_role("button", name="继续办理").click()
    warning.wait_for(state="hidden")
    page.clock.fast_forward((settings.session_idle_minutes - 2) * 60_000 + 5_000)
    assert warning.is_visible()
    page.clock.fast_forward(125_000)
    assert "登录已超时" in warning.inner_text()
    assert page.get_by_role("button", name="继续办理").is_hidden()
