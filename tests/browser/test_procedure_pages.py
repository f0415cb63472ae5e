"""On a phone: the 补正 notice after a formal submission, handing in, and a suspended clock."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import check_page
from tests.conftest import PASSWORD, PDF_BYTES
from tests.e2e.harness import wait_for
from tests.live import file_a_case

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_correction_after_submission_and_suspended_clock(running, phone, tmp_path):
    portal, bureau = running
    page = phone
    person = portal.register()
    case_no, item = file_a_case(portal, prereview=False)
    assert portal.post(f"/api/v1/cases/{case_no}/submission").status_code == 202
    wait_for(lambda: bureau.status(case_no) == "submitted", what="case at the bureau")
    named = next(m for m in item["materials"] if m["required"])
    bureau.act(
        case_no,
        "correction",
        {
            "comment": "申请材料不符合法定形式",
            "materials": [{"code": named["code"], "comment": "请加盖公章"}],
        },
    )
    wait_for(lambda: portal.case(case_no)["status"] == "correction_required", what="待补正")

    page.goto(portal.server.url + "/login")
    page.fill("#f-phone", person["phone"])
    page.fill("#f-password", PASSWORD)
    page.click("main button[type=submit]")
    page.goto(f"{portal.server.url}/cases/{case_no}")
    assert "请加盖公章" in page.locator("#corrections").inner_text()
    check_page(page, "40-correction-required")

    fixed = tmp_path / "盖章版.pdf"
    fixed.write_bytes(PDF_BYTES + b"%stamped")
    # The returned file is replaced in one step, by the form next to it.
    replace = f"#m-{named['code']} .files form.upload-form"
    page.set_input_files(f"{replace} input[name=file]", str(fixed))
    page.click(f"{replace} button[type=submit]")
    page.wait_for_selector(f"#m-{named['code']} .files li >> text=盖章版.pdf")
    page.goto(f"{portal.server.url}/cases/{case_no}/correction")
    check_page(page, "41-correction-check")
    page.click("text=确认并提交补正材料")
    page.wait_for_url(re.compile(rf"/cases/{case_no}$"))
    wait_for(lambda: bureau.status(case_no) == "submitted", what="corrections at the bureau")

    bureau.act(case_no, "accept", {})
    wait_for(lambda: portal.case(case_no)["status"] == "accepted", what="accepted")
    bureau.act(
        case_no,
        "suspend",
        {"reason_code": "expert_review", "reason": "组织专家评审", "expected_days": 5},
    )
    wait_for(lambda: not portal.case(case_no)["clock"]["running"], what="suspended")
    page.goto(f"{portal.server.url}/cases/{case_no}")
    assert "计时暂停（专家评审）" in page.content()
    check_page(page, "42-clock-suspended")
