"""Help within reach, on a phone with JavaScript off: a 12345 question without an account
(获取验证码, check page, reference), finding it again by phone + reference + code, and
the 办事大厅 page — each axe-checked with every tap target ≥ 44 px."""

from __future__ import annotations

import re

import pytest

from tests.conftest import DEV_CODES, make_phone
from tests.kit import expire_blocks
from tests.kit_browser import check_page_without_js, new_phone
from tests.live import ThreadServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(app):
    with ThreadServer(app) as live:
        yield live


def test_a_question_without_an_account_and_its_lookup(server, db, browser):
    base = server.url
    plain = new_phone(browser, javascript=False)
    probe = new_phone(browser, javascript=True)
    probe.goto(base + "/")  # same origin, so the stylesheet applies to the copied DOM

    plain.goto(base + "/halls")
    assert plain.locator("a[href='tel:12345']").count() >= 3
    check_page_without_js(plain, probe, "help-halls")

    phone = make_phone()
    plain.goto(base + "/consultations/new")
    check_page_without_js(plain, probe, "help-12345-anonymous")
    plain.check("input[name=kind][value=consult]")
    plain.fill("#f-subject", "开网吧要办哪些证")
    plain.fill("#f-body", "请问开网吧需要先办哪些手续？")
    plain.fill("#f-contact_name", "李先生")
    plain.fill("#f-contact_phone", phone)
    before = len(DEV_CODES.codes)
    plain.click("button:text-is('获取验证码')")
    plain.wait_for_selector("#code-notice")
    assert plain.input_value("#f-subject") == "开网吧要办哪些证"
    check_page_without_js(plain, probe, "help-12345-code-sent")
    plain.fill("#f-code", DEV_CODES.after(before))
    plain.click("main form button.btn:text-is('下一步：核对内容')")
    plain.wait_for_url(re.compile(r"/consultations/check$"))
    check_page_without_js(plain, probe, "help-12345-check")
    plain.click("button:text-is('确认提交')")
    plain.wait_for_url(re.compile(r"/consultations/[0-9a-f-]{36}$"))
    check_page_without_js(plain, probe, "help-12345-submitted")
    reference = re.search(r"ZX\d{12}", plain.content()).group(0)

    # Another phone (browser) finds it with the phone, the reference and a new code.
    other = new_phone(browser, javascript=False)
    other.goto(f"{base}/consultations/lookup?ref={reference}")
    check_page_without_js(other, probe, "help-12345-lookup")
    other.fill("#f-phone", phone)
    expire_blocks(db, f"sms:phone-purpose:{phone}")  # a minute later
    before = len(DEV_CODES.codes)
    other.click("button:text-is('获取验证码')")
    other.wait_for_selector("#code-notice")
    other.fill("#f-code", DEV_CODES.after(before))
    other.click("main form button.btn:text-is('查询')")
    other.wait_for_url(re.compile(r"/consultations/[0-9a-f-]{36}$"))
    assert "开网吧要办哪些证" in other.content()
