"""On a phone, against the real back office: express delivery through the cascading
address selects (JavaScript on, then off), the confirmation page, 好差评 on the finished
case, and the public status page opened from the receipt's QR link."""

from __future__ import annotations

import base64
import re

import pytest

from portal.status.service import qr_svg
from tests.browser.conftest import CHROMIUM, check_page
from tests.e2e.harness import wait_for
from tests.kit_browser import check_page_without_js, log_in, new_phone
from tests.live import draft_with_materials

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def choose_item(portal) -> dict:
    """An item that posts licences and needs no pre-review, found through the API."""
    for summary in portal.http.get("/api/v1/items").json()["items"]:
        if summary["express"] and not summary["prereview"] and summary["online"]:
            return portal.http.get(f"/api/v1/items/{summary['code']}").json()
    raise AssertionError("the catalogue has no item with express and without pre-review")


def fill_contact(page):
    page.fill("[id='f-address.detail']", "湖塘镇人民中路 88 号")
    page.fill("[id='f-address.recipient']", "吴测试")
    page.fill("[id='f-address.phone']", "13912345678")


def test_delivery_rating_and_public_status_on_a_phone(running, phone, browser):
    assert CHROMIUM
    portal, bureau = running
    base = portal.server.url
    person = portal.register()
    item = choose_item(portal)
    case_no = draft_with_materials(portal, item)

    # JavaScript on: the next select fills itself; the "下一步" buttons are gone.
    page = phone
    log_in(page, base, person)
    page.goto(f"{base}/cases/{case_no}/delivery")
    assert page.locator(".js-cascade").count() == 0
    assert page.locator("#express-section").is_hidden()
    check_page(page, "d40-delivery")
    page.click("label[for='f-method-1']")  # 快递寄送
    assert page.locator("#express-section").is_visible()
    assert page.locator("#pickup-section").is_hidden()
    page.select_option("[id='f-address.province']", "320000")
    page.wait_for_selector("[id='f-address.city'] option[value='320400']", state="attached")
    page.select_option("[id='f-address.city']", "320400")
    page.wait_for_selector("[id='f-address.district'] option[value='320412']", state="attached")
    page.select_option("[id='f-address.district']", "320412")
    fill_contact(page)
    check_page(page, "d41-delivery-filled")
    page.click("text=保存领取方式")
    page.wait_for_url(re.compile(rf"/cases/{case_no}"))
    assert "已保存证照领取方式" in page.inner_text("main")

    # Submit on the phone: the confirmation page with the number and the QR code.
    page.goto(f"{base}/cases/{case_no}/review")
    assert "江苏省常州市武进区湖塘镇人民中路 88 号" in page.inner_text("main")
    page.click("text=确认并提交申请")
    page.wait_for_url(re.compile(r"/submitted$"))
    assert page.inner_text(".panel .big") == case_no
    assert page.evaluate("() => document.querySelector('img.qr').naturalWidth") > 0
    check_page(page, "d42-submitted")
    wait_for(lambda: bureau.status(case_no) == "submitted", what="the case at the bureau")
    assert bureau.case(case_no)["delivery"]["address"]["district"] == "武进区"

    # JavaScript off: the same selects cascade through the server, step by step.
    plain = new_phone(browser, javascript=False)
    probe = new_phone(browser, javascript=True)
    probe.goto(base + "/healthz")
    log_in(plain, base, person)
    plain.goto(f"{base}/cases/{case_no}/delivery")
    assert plain.locator(".js-cascade").count() == 2
    check_page_without_js(plain, probe, "d43-delivery-no-js")
    plain.click("label[for='f-method-1']")
    plain.select_option("[id='f-address.province']", "110000")
    plain.click("text=下一步：选择城市")
    plain.wait_for_selector("[id='f-address.city'] option[value='110100']", state="attached")
    assert plain.is_checked("#f-method-1")
    plain.select_option("[id='f-address.city']", "110100")
    plain.click("text=下一步：选择区县")
    plain.wait_for_selector("[id='f-address.district'] option[value='110101']", state="attached")
    plain.select_option("[id='f-address.district']", "110101")
    fill_contact(plain)
    plain.fill("[id='f-address.phone']", "1391234")  # a wrong number first
    plain.click("text=保存领取方式")
    assert plain.locator("#error-summary").is_visible()
    assert "手机号码应为 11 位数字" in plain.inner_text("[id='f-address.phone-error']")
    check_page_without_js(plain, probe, "d44-delivery-no-js-error")
    plain.fill("[id='f-address.phone']", "13912345678")
    plain.click("text=保存领取方式")
    # The case is with the bureau: check your answers before it hears of the change.
    assert "北京市东城区湖塘镇人民中路 88 号" in plain.inner_text("dl.summary")
    check_page_without_js(plain, probe, "d44b-delivery-check-no-js")
    plain.click("text=确认并通知审批局")
    plain.wait_for_url(re.compile(rf"/cases/{case_no}"))
    assert "北京市东城区湖塘镇人民中路 88 号" in plain.inner_text("#delivery")
    check_page_without_js(plain, probe, "d45-case-with-delivery-no-js")
    wait_for(
        lambda: (
            (bureau.case(case_no)["delivery"] or {}).get("address", {}).get("district") == "东城区"
        ),
        what="delivery.selected at the bureau",
    )
    assert plain.outside_requests == [] and probe.outside_requests == []
    plain.context.close()
    probe.context.close()

    # The bureau decides; the citizen rates the finished case.
    bureau.act(case_no, "accept", {})
    wait_for(lambda: portal.case(case_no)["status"] == "accepted", what="accepted")
    bureau.act(case_no, "approve", {})
    wait_for(lambda: portal.case(case_no)["status"] == "approved", what="approved")
    page.goto(f"{base}/cases/{case_no}")
    page.click("text=去评价")
    page.wait_for_url(re.compile(r"/rating$"))
    check_page(page, "d46-rating")
    page.click("label[for='f-level-2']")  # 不满意, without saying why
    page.click("text=下一步：核对评价")
    assert page.locator("#error-summary").is_visible()
    assert page.locator("#f-comment-error").is_visible()
    check_page(page, "d47-rating-error")
    page.fill("#f-comment", "等待时间太长")
    page.click("label[for='f-tags-6']")  # 等待时间长
    page.click("text=下一步：核对评价")
    page.wait_for_url(re.compile(r"/rating/check$"))
    assert "不满意" in page.inner_text("dl.summary") and "等待时间太长" in page.inner_text("main")
    check_page(page, "d47-rating-check")
    page.click("text=确认提交评价")
    page.wait_for_url(re.compile(rf"/cases/{case_no}"))
    assert "等待时间太长" in page.inner_text("#rating")
    wait_for(lambda: bureau.case(case_no).get("rating"), what="rating at the bureau")
    rating = bureau.case(case_no)["rating"]
    assert rating["level"] == 2 and rating["code"] == 4

    bureau.act(case_no, "reply", {"reply": "感谢反馈，我们已增加窗口人员。"})
    bureau.act(case_no, "ship", {"carrier": "EMS", "tracking_no": "EM123456789CN"})
    wait_for(lambda: (portal.case(case_no)["delivery"] or {}).get("tracking_no"), what="shipped")
    wait_for(lambda: portal.case(case_no)["rating"]["reply"], what="the bureau's reply")
    page.goto(f"{base}/cases/{case_no}")
    assert "感谢反馈，我们已增加窗口人员。" in page.inner_text("#rating")
    assert "EM123456789CN" in page.inner_text("#delivery")
    check_page(page, "d48-rated-and-shipped")
    page.goto(f"{base}/messages")
    assert "证照已寄出" in page.inner_text("main")
    check_page(page, "d49-messages")
    # Opening a message changes nothing; 标为已读 is a form, and works with JavaScript off.
    plain = new_phone(browser, javascript=False)
    probe = new_phone(browser, javascript=True)
    probe.goto(base + "/healthz")
    log_in(plain, base, person)
    unread = portal.get("/api/v1/messages").json()["unread"]
    plain.goto(f"{base}/messages")
    plain.click("main a[href^='/messages/'] >> nth=0")
    plain.wait_for_url(re.compile(r"/messages/\d+$"))
    assert portal.get("/api/v1/messages").json()["unread"] == unread
    check_page_without_js(plain, probe, "d49b-message-no-js")
    plain.click("text=标为已读")
    plain.wait_for_url(re.compile(r"/messages/\d+$"))
    assert "已标为已读" in plain.inner_text("main")
    assert portal.get("/api/v1/messages").json()["unread"] == unread - 1
    plain.context.close()
    probe.context.close()

    # The receipt's QR code encodes the link printed beside it; it opens without a login.
    page.goto(f"{base}/cases/{case_no}/receipt")
    check_page(page, "d50-receipt")
    link = page.get_attribute("a.status-link", "href")
    assert link.startswith(f"{base}/status/link/")
    src = page.get_attribute("img.qr", "src")
    assert base64.b64decode(src.split(",", 1)[1]) == qr_svg(link)
    visitor = new_phone(browser, javascript=True)
    visitor.goto(link)
    main = visitor.inner_text("main")
    assert case_no in main and "已办结：准予许可" in main and "证照已寄出" in main
    assert person["phone"] not in visitor.content() and "吴测试" not in main
    check_page(visitor, "d51-public-status")
    wrong = "1111" if person["phone"].endswith("0000") else "0000"
    visitor.goto(f"{base}/status?case_no={case_no}&phone_last4={wrong}")
    assert visitor.locator("#error-summary").is_visible()
    check_page(visitor, "d52-status-not-found")
    assert visitor.outside_requests == []
    visitor.context.close()
