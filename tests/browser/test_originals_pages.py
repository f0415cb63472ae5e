"""材料寄递 on a phone against the real back office: the originals page with JavaScript on
(only the chosen method's fields show) and off (the address selects cascade on the server),
its errors and check page, the case page's small timeline, and the 常用地址 page — each
axe-checked with 44 px taps."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import CHROMIUM, check_page
from tests.e2e.harness import wait_for
from tests.kit_browser import check_page_without_js, log_in, new_phone
from tests.live import draft_with_materials

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def originals_item(portal) -> dict:
    for summary in portal.http.get("/api/v1/items").json()["items"]:
        item = portal.http.get(f"/api/v1/items/{summary['code']}").json()
        if summary["online"] and any(m["original"] for m in item["materials"]):
            return item
    raise AssertionError("no item asks for an original")


def formally_submitted(portal, bureau, item) -> str:
    case_no = draft_with_materials(portal, item)
    if item["prereview"]:
        assert portal.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
        wait_for(lambda: bureau.status(case_no) == "prereview", what="the case at the bureau")
        bureau.act(case_no, "pass", {})
        wait_for(lambda: portal.case(case_no)["status"] == "prereview_passed", what="passed")
    assert portal.post(f"/api/v1/cases/{case_no}/submission").status_code == 202
    wait_for(lambda: bureau.status(case_no) == "submitted", what="the formal submission")
    return case_no


def test_originals_pages_on_a_phone(running, phone, browser):
    assert CHROMIUM
    portal, bureau = running
    base = portal.server.url
    person = portal.register()
    item = originals_item(portal)
    case_no = formally_submitted(portal, bureau, item)

    # JavaScript on: choosing 上门取件 shows the carrier and the address, 窗口递交 the halls.
    page = phone
    log_in(page, base, person)
    page.goto(f"{base}/cases/{case_no}")
    check_page(page, "o10-case-originals-asked")
    page.click("text=寄送或递交原件")
    page.wait_for_url(re.compile(rf"/cases/{case_no}/originals$"))
    assert page.locator(".js-cascade").count() == 0
    check_page(page, "o11-originals")
    page.click("label[for='f-method-1']")  # 上门取件
    assert page.locator("[id='f-address.detail']").is_visible()
    assert page.locator("#f-hall").is_hidden()
    page.click("label[for='f-carrier-1']")  # EMS
    page.fill("#f-tracking_no", "EM12345")  # not an EMS number
    page.select_option("[id='f-address.province']", "320000")
    page.wait_for_selector("[id='f-address.city'] option[value='320400']", state="attached")
    page.select_option("[id='f-address.city']", "320400")
    page.wait_for_selector("[id='f-address.district'] option[value='320412']", state="attached")
    page.select_option("[id='f-address.district']", "320412")
    page.fill("[id='f-address.detail']", "湖塘镇花园街 12 号")
    page.fill("[id='f-address.recipient']", "吴测试")
    page.fill("[id='f-address.phone']", "13912345678")
    page.click("text=下一步：核对")
    assert page.locator("#error-summary").is_visible()
    assert "EMS的单号格式不对" in page.inner_text("#f-tracking_no-error")
    check_page(page, "o12-originals-error")
    page.fill("#f-tracking_no", "1012345678901")
    page.click("text=下一步：核对")
    assert "1012345678901" in page.inner_text("dl.summary")
    check_page(page, "o13-originals-check")
    page.click("text=确认并通知审批局")
    page.wait_for_url(re.compile(rf"/cases/{case_no}"))
    assert "等待审批局签收" in page.inner_text("#originals")
    wait_for(
        lambda: (bureau.case(case_no).get("originals") or {}).get("tracking_no") == "1012345678901",
        what="originals.posted at the bureau",
    )
    bureau.act(case_no, "originals-received", {"note": "原件已核验"})
    wait_for(lambda: portal.case(case_no)["originals"]["received_at"], what="the receipt")
    page.reload()
    assert "审批局已签收" in page.inner_text("#originals")
    check_page(page, "o14-case-originals-received")

    # JavaScript off, on a second case: the pickup address cascades on the server and the
    # address used before is offered (preselected) from the 常用地址 book.
    other = formally_submitted(portal, bureau, item)
    plain = new_phone(browser, javascript=False)
    probe = new_phone(browser, javascript=True)
    probe.goto(base + "/healthz")
    log_in(plain, base, person)
    plain.goto(f"{base}/cases/{other}/originals")
    assert plain.locator(".js-cascade").count() == 2
    assert plain.is_checked("#f-address_id-1")  # the book's latest address
    check_page_without_js(plain, probe, "o15-originals-no-js")
    plain.click("label[for='f-method-3']")  # 窗口递交
    plain.click("label[for='f-hall-1']")
    plain.click("text=下一步：核对")
    assert "窗口递交" in plain.inner_text("dl.summary")
    check_page_without_js(plain, probe, "o16-originals-check-no-js")
    plain.click("text=确认并通知审批局")
    plain.wait_for_url(re.compile(rf"/cases/{other}"))
    assert "将到窗口递交" in plain.inner_text("#originals")
    plain.goto(f"{base}/account/addresses")
    assert "湖塘镇花园街 12 号" in plain.inner_text("main")
    check_page_without_js(plain, probe, "o17-address-book-no-js")
    plain.click("main form button")
    plain.wait_for_url(re.compile(r"/account/addresses$"))
    assert "还没有常用地址" in plain.inner_text("main")
    assert plain.outside_requests == [] and probe.outside_requests == []
    plain.context.close()
    probe.context.close()
