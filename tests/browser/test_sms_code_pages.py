"""SMS code pages with JavaScript off on a phone: 获取验证码 on registration, 短信验证码登录,
忘记密码 — each page axe-checked with every tap target ≥ 44 px."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import check_page
from tests.conftest import DEV_CODES, PASSWORD, make_phone, make_ric, register
from tests.kit_browser import check_page_without_js, new_phone
from tests.live import ThreadServer

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"register_needs_code": True})


@pytest.fixture
def server(app):
    with ThreadServer(app) as live:
        yield live


def last_code(before: int) -> str:
    return DEV_CODES.after(before)


def test_code_pages_without_javascript(server, client, browser):
    base = server.url
    plain = new_phone(browser, javascript=False)
    probe = new_phone(browser, javascript=True)
    probe.goto(base + "/")  # same origin, so the stylesheet applies to the copied DOM

    # Registration: 获取验证码 sends the code and brings the form back filled in.
    phone = make_phone()
    plain.goto(base + "/register")
    check_page_without_js(plain, probe, "sms-register")
    plain.fill("#f-name", "钱八")
    plain.fill("#f-id_number", make_ric())
    plain.fill("#f-phone", phone)
    before = len(DEV_CODES.codes)
    plain.click("button:text-is('获取验证码')")
    plain.wait_for_selector("#code-notice")
    assert plain.input_value("#f-name") == "钱八"
    check_page_without_js(plain, probe, "sms-register-sent")
    plain.fill("#f-code", last_code(before))
    plain.fill("#f-password", PASSWORD)
    plain.check("#f-privacy_consent")
    plain.click("main form button:visible:text-is('注册')")
    plain.wait_for_url(re.compile(r"/cases$"))

    # 短信验证码登录, from the login page.
    person = register(client)
    fresh = new_phone(browser, javascript=False)
    fresh.goto(base + "/login")
    fresh.click("text=短信验证码登录")
    fresh.wait_for_url(re.compile(r"/login/code"))
    check_page_without_js(fresh, probe, "sms-login")
    fresh.fill("#f-phone", person["phone"])
    before = len(DEV_CODES.codes)
    fresh.click("button:text-is('获取验证码')")
    fresh.wait_for_selector("#code-notice")
    fresh.fill("#f-code", "000000" if last_code(before) != "000000" else "111111")
    fresh.click("main form button:visible:text-is('登录')")
    fresh.wait_for_selector("#error-summary")
    check_page_without_js(fresh, probe, "sms-login-wrong")
    sent = len(DEV_CODES.codes)
    fresh.fill("#f-code", DEV_CODES.codes[-1])
    fresh.press("#f-code", "Enter")  # the phone keyboard's 前往: logs in, asks no new code
    fresh.wait_for_url(re.compile(r"/cases$"))
    assert len(DEV_CODES.codes) == sent

    # 忘记密码.
    other = new_phone(browser, javascript=False)
    other.goto(base + "/login")
    other.click("text=忘记密码？")
    other.wait_for_url(re.compile(r"/password-reset"))
    check_page_without_js(other, probe, "sms-reset")
    other.fill("#f-phone", person["phone"])
    before = len(DEV_CODES.codes)
    other.click("button:text-is('获取验证码')")
    other.wait_for_selector("#code-notice")
    other.fill("#f-code", last_code(before))
    other.fill("#f-password", "brand-new-pass-5")
    other.press("#f-password", "Enter")
    other.wait_for_url(re.compile(r"/login$"))
    assert "密码已重置" in other.content()
    check_page_without_js(other, probe, "sms-reset-done")
    # The session that logged in by code has ended with the reset.
    fresh.goto(base + "/account")
    assert "/login" in fresh.url
    for page in (plain, fresh, other, probe):
        assert page.outside_requests == []
        page.context.close()


def test_code_pages_with_javascript(server, phone):
    for path, name in (("/login/code", "sms-login-js"), ("/password-reset", "sms-reset-js")):
        phone.goto(server.url + path)
        check_page(phone, name)
