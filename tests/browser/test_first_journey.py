"""A citizen on a phone: search → register → draft → upload a PDF and a photo → check answers."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import check_page
from tests.conftest import PDF_BYTES, jpeg_bytes, make_phone, make_ric, pick_item, valid_form
from tests.live import ThreadServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(app):
    with ThreadServer(app) as live:
        yield live


def test_search_register_draft_upload_review(server, client, phone, tmp_path):
    page = phone
    item = pick_item(client, prereview=True)
    base = server.url

    page.goto(base + "/")
    check_page(page, "01-home")
    page.fill("#q", item["name"][:4])
    page.click("form[role=search] button")
    page.wait_for_url(re.compile(r"/items\?q="))
    check_page(page, "02-search")
    page.click(f"a[href='/items/{item['code']}']")
    check_page(page, "03-item")

    page.click("text=在线申请")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.click("main >> text=注册")
    number, mobile = make_ric(), make_phone()
    page.fill("#f-name", "周小萌")
    page.fill("#f-id_number", number)
    page.fill("#f-phone", mobile)
    page.fill("#f-password", "s3cure-pass-word")
    page.check("#f-privacy_consent")
    check_page(page, "04-register")
    page.get_by_role("button", name="注册", exact=True).click()
    page.wait_for_url(f"**/items/{item['code']}")
    page.click("text=在线申请")
    page.wait_for_url("**/form")
    check_page(page, "05-form")

    # A value of the wrong type: the error shows next to the field and in a summary at the top.
    typed = next(f for f in item["fields"] if f["type"] in ("number", "date", "phone"))
    page.fill(f"[id='f-form.{typed['name']}']", "不对")
    page.click("main button[type=submit]")
    assert page.locator("#error-summary").is_visible()
    check_page(page, "06-form-errors")
    for spec, value in zip(item["fields"], valid_form(item).values(), strict=True):
        selector = f"[id='f-form.{spec['name']}']"
        if spec["type"] == "select":
            page.select_option(selector, value)
        elif spec["type"] == "checkbox":
            page.check(selector)
        else:
            page.fill(selector, str(value))
    page.click("main button[type=submit]")
    page.wait_for_url("**/cases/WJ*")
    check_page(page, "07-case")

    pdf = tmp_path / "营业执照.pdf"
    pdf.write_bytes(PDF_BYTES)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes((800, 600)))
    required = [m for m in item["materials"] if m["required"]]
    for index, material in enumerate(required):
        if index == 0:
            page.set_input_files(f"#photo-{material['code']}", str(photo))
        else:
            page.set_input_files(f"#file-{material['code']}", str(pdf))
        page.click(f"#m-{material['code']} form.upload-form button[type=submit]")
        page.wait_for_selector(f"#m-{material['code']} .files li")
    assert page.locator(".files img").count() >= 1  # the photo's thumbnail
    check_page(page, "08-uploaded")

    page.click("text=下一步：核对并提交")
    page.wait_for_url("**/review")
    assert number not in page.content()
    assert number[:4] + "************" + number[-2:] in page.content()
    check_page(page, "09-check-your-answers")
