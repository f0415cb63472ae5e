"""Uploading on a 360 px phone with JavaScript on: big labels, photos, staying at the material."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.browser.conftest import OUTPUT, check_page
from tests.conftest import PASSWORD, PDF_BYTES, pick_item, register
from tests.factories import new_case
from tests.live import ThreadServer

pytestmark = pytest.mark.browser

SMALL_PHONE = {"width": 360, "height": 740}


@pytest.fixture
def server(app):
    with ThreadServer(app) as live:
        yield live


@pytest.fixture
def small_phone(browser):
    context = browser.new_context(
        viewport=SMALL_PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    page = context.new_page()
    yield page
    context.close()


def photo_file(tmp_path, name, size, colour):
    path = tmp_path / name
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    path.write_bytes(out.getvalue())
    return str(path)


def no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= SMALL_PHONE["width"], f"page is {width} px wide"


def test_upload_photos_on_a_small_phone_stays_at_the_material(
    server, client, small_phone, tmp_path
):
    page = small_phone
    person = register(client)
    auth_response = client.post(
        "/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD}
    )
    auth = {"Authorization": f"Bearer {auth_response.json()['token']}"}
    # An item with a long checklist, so the last material is far down the page.
    item = max(
        (pick_item(client, prereview=True), pick_item(client, prereview=False)),
        key=lambda i: len(i["materials"]),
    )
    case_no = new_case(client, auth, item)["case_no"]
    last = item["materials"][-1]["code"]

    page.goto(server.url + "/login")
    page.fill("#f-phone", person["phone"])
    page.fill("#f-password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{server.url}/cases/{case_no}")

    # Every upload control's label is the button: at least 44 px high, and the input it
    # stands for is named by it (and still focusable, for a keyboard).
    sizes = page.evaluate(
        """() => Array.from(document.querySelectorAll('label.file-button')).map(l => {
             const r = l.getBoundingClientRect(), input = document.getElementById(l.htmlFor);
             return {h: r.height, w: r.width, input: !!input, type: input && input.type,
                     capture: input && input.getAttribute('capture'), multiple: input && input.multiple};
           })"""
    )
    assert sizes and all(s["h"] >= 44 and s["input"] and s["type"] == "file" for s in sizes), sizes
    photos = [s for s in sizes if s["capture"]]
    assert photos and all(s["capture"] == "environment" and s["multiple"] for s in photos)
    no_horizontal_overflow(page)
    check_page(page, "60-upload-phone-case")

    # The keyboard reaches the hidden input; its focus shows on the label.
    page.focus(f"#photo-{last}")
    outline = page.evaluate(
        f"getComputedStyle(document.querySelector('label[for=photo-{last}]')).outlineStyle"
    )
    assert outline == "solid"

    # Far down the page: two photos of a two-page material.
    material = page.locator(f"#m-{last}")
    material.scroll_into_view_if_needed()
    page.evaluate(f"document.getElementById('m-{last}').scrollIntoView({{block: 'start'}})")
    before = page.evaluate("window.scrollY")
    page.evaluate("window.__same_page = true")  # gone if the upload reloaded the page
    assert before > 1000, "the material is far down the page"
    page.set_input_files(
        f"#photo-{last}",
        [
            photo_file(tmp_path, "page1.jpg", (900, 1200), (200, 30, 30)),
            photo_file(tmp_path, "page2.jpg", (900, 1200), (30, 60, 200)),
        ],
    )
    assert "page1.jpg、page2.jpg" in material.locator(".chosen").inner_text()
    material.locator("form.upload-form button[type=submit]").click()
    done = page.locator(f"#done-{last}")
    done.wait_for(state="visible")
    assert "已上传" in done.inner_text() and "2 张照片已合成一份材料" in done.inner_text()
    assert page.evaluate("document.activeElement.id") == f"done-{last}"
    assert page.evaluate("window.__same_page === true"), "updated in place, not reloaded"
    after = page.evaluate("window.scrollY")
    # Still at the material: not thrown back to the top of the page.
    assert abs(after - before) < 300, (before, after)
    box = done.bounding_box()
    assert box and box["y"] >= 0 and box["y"] + box["height"] <= SMALL_PHONE["height"]
    assert material.locator(".files li").count() == 1
    assert material.locator(".files a").inner_text().endswith("（2页）.pdf")
    no_horizontal_overflow(page)
    check_page(page, "61-upload-phone-done")

    # Both a file and photos: said next to the controls before anything is sent.
    first = item["materials"][0]["code"]
    scan = tmp_path / "营业执照.pdf"
    scan.write_bytes(PDF_BYTES)
    page.set_input_files(f"#file-{first}", str(scan))
    page.set_input_files(
        f"#photo-{first}", photo_file(tmp_path, "p.jpg", (600, 800), (30, 160, 60))
    )
    form = page.locator(f"#m-{first} form.upload-form")
    warning = form.locator(".chosen")
    assert "只能上传其中一种" in warning.inner_text()
    form.locator("button[type=submit]").click()
    assert page.evaluate("document.activeElement.className") == "chosen error-message"
    assert page.locator(f"#m-{first} .files li").count() == 0, "nothing was sent"
    check_page(page, "62-upload-phone-both-chosen")

    # Keep the file: its button drops the photos, and focus goes to 上传.
    keep = warning.get_by_role("button", name="保留文件“营业执照.pdf”")
    assert warning.get_by_role("button", name="保留 1 张照片").is_visible()
    keep.click()
    assert page.evaluate(f"document.getElementById('photo-{first}').files.length") == 0
    assert page.evaluate("document.activeElement.type") == "submit"
    assert "已选择：营业执照.pdf" in warning.inner_text()
    form.locator("button[type=submit]").click()
    page.locator(f"#done-{first}").wait_for(state="visible")
    assert "已上传“营业执照.pdf”" in page.locator(f"#done-{first}").inner_text()
    # The forms put in place by the first upload were enhanced too.
    assert page.evaluate("window.__same_page === true")

    # A refused file, with JS: the error stands by the controls, focused, the page kept.
    second = item["materials"][1]["code"]
    fake = tmp_path / "扫描件.pdf"
    fake.write_bytes(b"this is not a PDF")
    page.evaluate(f"document.getElementById('m-{second}').scrollIntoView({{block: 'start'}})")
    before = page.evaluate("window.scrollY")
    page.set_input_files(f"#file-{second}", str(fake))
    page.locator(f"#m-{second} form.upload-form button[type=submit]").click()
    error = page.locator(f"#err-{second}")
    error.wait_for(state="visible")
    assert "PDF、JPG 或 PNG" in error.inner_text()
    assert page.evaluate("document.activeElement.id") == f"err-{second}"
    assert abs(page.evaluate("window.scrollY") - before) < 300
    assert page.locator("#error-summary").count() == 1  # and listed at the top
    assert page.evaluate("window.__same_page === true")
    no_horizontal_overflow(page)
    check_page(page, "63-upload-phone-refused")


def test_without_js_the_upload_lands_on_the_material(server, client, browser, tmp_path):
    context = browser.new_context(
        viewport=SMALL_PHONE,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        java_script_enabled=False,
    )
    context.set_default_timeout(15000)
    page = context.new_page()
    person = register(client)
    token = client.post("/api/v1/tokens", json={"phone": person["phone"], "password": PASSWORD})
    auth = {"Authorization": f"Bearer {token.json()['token']}"}
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    last = item["materials"][-1]["code"]
    page.goto(server.url + "/login")
    page.fill("#f-phone", person["phone"])
    page.fill("#f-password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{server.url}/cases/{case_no}")
    page.set_input_files(
        f"#photo-{last}",
        [
            photo_file(tmp_path, "a.jpg", (900, 1200), (200, 30, 30)),
            photo_file(tmp_path, "b.jpg", (900, 1200), (30, 60, 200)),
        ],
    )
    page.locator(f"#m-{last} form.upload-form button[type=submit]").click()
    page.wait_for_url(f"**/cases/{case_no}#m-{last}")
    # Only what needs no script in the page (JS is off): the markup, the box, a picture.
    html = page.content()
    block = html[html.index(f'<li id="m-{last}">') :]
    assert f'id="done-{last}" role="status"' in block and "2 张照片已合成一份材料" in block
    box = page.locator(f"#done-{last}").bounding_box()
    assert box and box["y"] >= 0 and box["y"] + box["height"] <= SMALL_PHONE["height"], box
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "64-upload-phone-no-js.png"))  # the viewport as landed
    context.close()
