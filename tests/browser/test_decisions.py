"""On a phone: a returned case's correction page, then the approved case's licence download."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.browser.conftest import check_page
from tests.conftest import PASSWORD, PDF_BYTES
from tests.e2e.harness import wait_for
from tests.live import file_a_case

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_correction_page_and_licence_download(running, phone, tmp_path):
    portal, bureau = running
    page = phone
    person = portal.register()
    case_no, item = file_a_case(portal, prereview=True)
    assert portal.post(f"/api/v1/cases/{case_no}/prereview").status_code == 202
    wait_for(lambda: bureau.status(case_no) == "prereview", what="case at the bureau")
    notes = [
        {"code": m["code"], "comment": f"{m['name']}：请上传加盖公章的清晰版本"}
        for m in item["materials"]
        if m["required"]
    ][:2]
    bureau.act(case_no, "return", {"comment": "请按以下意见一次性补正", "materials": notes})
    wait_for(lambda: portal.case(case_no)["status"] == "returned", what="returned")

    page.goto(portal.server.url + "/login")
    page.fill("#f-phone", person["phone"])
    page.fill("#f-password", PASSWORD)
    page.click("main button[type=submit]")
    page.goto(f"{portal.server.url}/cases/{case_no}")
    corrections = page.locator("#corrections")
    assert corrections.is_visible()
    for note in notes:
        assert note["comment"] in corrections.inner_text()
    check_page(page, "20-returned-corrections")

    # Re-upload right next to the first note, then resubmit from the check-your-answers page.
    first = notes[0]["code"]
    fixed = tmp_path / "盖章版.pdf"
    fixed.write_bytes(PDF_BYTES + b"%stamped")
    # The returned file is replaced in one step, by the form next to it.
    replace = f"#m-{first} .files form.upload-form"
    page.set_input_files(f"{replace} input[name=file]", str(fixed))
    page.click(f"{replace} button[type=submit]")
    page.wait_for_selector(f"#m-{first} .files li >> text=盖章版.pdf")
    page.goto(f"{portal.server.url}/cases/{case_no}/review")
    page.click("text=重新提交预审")
    page.wait_for_url(re.compile(r"/submitted$"))
    check_page(page, "21-resubmitted")

    wait_for(lambda: bureau.status(case_no) == "prereview", what="round 2 at the bureau")
    bureau.act(case_no, "pass", {})
    wait_for(lambda: portal.case(case_no)["status"] == "prereview_passed", what="passed")
    page.goto(f"{portal.server.url}/cases/{case_no}/review")
    page.click("text=确认并提交申请")
    page.wait_for_url(re.compile(r"/submitted$"))
    wait_for(lambda: bureau.status(case_no) == "submitted", what="formal submission")
    bureau.act(case_no, "accept", {})
    wait_for(lambda: portal.case(case_no)["status"] == "accepted", what="accepted")
    page.goto(f"{portal.server.url}/cases/{case_no}")
    assert page.locator(".countdown").is_visible()
    check_page(page, "22-accepted-countdown")

    bureau.act(case_no, "approve", {})
    wait_for(
        lambda: (portal.case(case_no)["licence"] or {}).get("download_url"), what="licence fetched"
    )
    page.goto(f"{portal.server.url}/cases/{case_no}")
    check_page(page, "23-approved")
    with page.expect_download() as download_info:
        page.click("text=下载电子证照")
    path = download_info.value.path()
    content = path.read_bytes()
    assert content.startswith(b"%PDF")
    licence = portal.case(case_no)["licence"]
    assert hashlib.sha256(content).hexdigest() in str(bureau.case(case_no)["licence"])
    assert licence["number"] in page.content()
