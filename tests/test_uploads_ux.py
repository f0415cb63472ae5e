"""Uploads a phone user can manage, through HTTP as a browser without JavaScript sends them.

Photos of one material become one PDF of a page each; a file and photos together are
refused with nothing kept; a returned file is replaced in one step; the redirect lands on
the material with its 已上传 line; blank forms and samples are linked and served.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image
from pypdf import PdfReader

from portal.resources import CATALOGUE_FILE
from tests.conftest import PDF_BYTES, csrf_of, jpeg_bytes, pick_item, png_bytes, web_login
from tests.factories import new_case, request_correction, upload

COLOURS = [(200, 30, 30), (30, 160, 60), (30, 60, 200)]


def photo(size, colour, *, fmt="JPEG", exif_orientation=None) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, colour)
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, fmt, exif=exif)
    else:
        image.save(out, fmt)
    return out.getvalue()


@pytest.fixture
def draft(client, auth, person):
    web_login(client, person)
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    return {"case_no": case_no, "item": item, "code": item["materials"][0]["code"]}


def post_upload(client, action, parts):
    page = client.get("/cases")
    # As a browser sends the form: the token first, then both inputs, the unused one empty.
    return client.post(
        action,
        data={"csrf_token": csrf_of(page.text)},
        files=parts,
        follow_redirects=False,
    )


def files_of(client, auth, case_no, code):
    case = client.get(f"/api/v1/cases/{case_no}", headers=auth).json()
    return next(m for m in case["materials"] if m["code"] == code)["files"]


def material_block(html: str, code: str) -> str:
    start = html.index(f'<li id="m-{code}">')
    end = html.find('<li id="m-', start + 1)
    return html[start : end if end > 0 else len(html)]


def stored_files(settings) -> list:
    return sorted(p for p in settings.data_dir.rglob("*") if p.is_file())


EMPTY_FILE = ("file", ("", b"", "application/octet-stream"))
EMPTY_PHOTOS = ("photos", ("", b"", "application/octet-stream"))


def test_photos_of_one_material_become_one_pdf_with_a_page_each(client, auth, draft):
    case_no, code = draft["case_no"], draft["code"]
    photos = [
        ("photos", ("IMG_0001.jpg", photo((900, 1200), COLOURS[0]), "image/jpeg")),
        # Taken with the phone on its side: stored landscape, EXIF says turn it upright.
        (
            "photos",
            ("IMG_0002.jpg", photo((1200, 900), COLOURS[1], exif_orientation=6), "image/jpeg"),
        ),
        ("photos", ("screenshot.png", photo((1200, 800), COLOURS[2], fmt="PNG"), "image/png")),
    ]
    response = post_upload(
        client, f"/cases/{case_no}/materials/{code}/files", [EMPTY_FILE, *photos]
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/cases/{case_no}#m-{code}"

    files = files_of(client, auth, case_no, code)
    assert len(files) == 1, "three photos are one material"
    assert files[0]["content_type"] == "application/pdf"
    assert files[0]["filename"].endswith("（3页）.pdf")
    pdf = client.get(f"/cases/{case_no}/files/{files[0]['id']}")
    assert pdf.status_code == 200
    pages = PdfReader(io.BytesIO(pdf.content)).pages
    assert len(pages) == 3
    shapes = ["portrait" if p.mediabox.height > p.mediabox.width else "landscape" for p in pages]
    assert shapes == ["portrait", "portrait", "landscape"], "each page upright, as photographed"
    for page, colour in zip(pages, COLOURS, strict=True):  # in the order taken
        pixels = page.images[0].image.convert("RGB").resize((1, 1)).getpixel((0, 0))
        assert all(abs(a - b) < 20 for a, b in zip(pixels, colour, strict=True)), pixels
    # A page is about as long as an A4 page (297 mm).
    assert abs(max(pages[0].mediabox.width, pages[0].mediabox.height) / 72 * 25.4 - 297) < 2

    block = material_block(client.get(response.headers["location"]).text, code)
    assert re.search(r'id="done-' + code + r'" role="status"[^>]*>已上传“[^”]+”：3 张照片', block)
    # And the library keeps the one PDF, not three photos.
    documents = client.get("/api/v1/library", headers=auth).json()["documents"]
    assert [d["content_type"] for d in documents] == ["application/pdf"]


def test_one_photo_stays_the_photo_with_its_thumbnail(client, auth, draft):
    case_no, code = draft["case_no"], draft["code"]
    response = post_upload(
        client,
        f"/cases/{case_no}/materials/{code}/files",
        [EMPTY_FILE, ("photos", ("IMG_0003.jpg", jpeg_bytes((800, 600)), "image/jpeg"))],
    )
    assert response.status_code == 303, response.text
    (only,) = files_of(client, auth, case_no, code)
    assert only["content_type"] == "image/jpeg"
    assert client.get(f"/cases/{case_no}/files/{only['id']}/thumb").status_code == 200


def test_a_file_and_photos_together_are_refused_and_nothing_is_kept(client, auth, draft, settings):
    case_no, code = draft["case_no"], draft["code"]
    before = stored_files(settings)
    documents_before = client.get("/api/v1/library", headers=auth).json()["documents"]
    for parts in (
        # The order a browser sends them, and the other way round.
        [
            ("file", ("营业执照.pdf", PDF_BYTES, "application/pdf")),
            ("photos", ("IMG_0001.jpg", jpeg_bytes(), "image/jpeg")),
        ],
        [
            ("photos", ("IMG_0001.jpg", jpeg_bytes(), "image/jpeg")),
            ("photos", ("IMG_0002.jpg", png_bytes(), "image/png")),
            ("file", ("营业执照.pdf", PDF_BYTES, "application/pdf")),
        ],
    ):
        response = post_upload(client, f"/cases/{case_no}/materials/{code}/files", parts)
        assert response.status_code == 422, response.text
        block = material_block(response.text, code)
        # Next to the controls, saying which to keep, and named by both inputs.
        error = re.search(
            r'<p class="error-message" id="err-' + code + r'"[^>]*>(.*?)</p>', block
        ).group(1)
        assert "只能上传其中一种" in error and "选择文件" in error and "拍照" in error
        assert block.index(f'id="err-{code}"') < block.index(f'id="file-{code}"')
        assert f'aria-describedby="err-{code} hint-{code}"' in block
        # And in the summary at the top, linked to the control.
        assert f'<a href="#file-{code}">' in response.text.split("<h1>")[0]
    assert files_of(client, auth, case_no, code) == []
    assert client.get("/api/v1/library", headers=auth).json()["documents"] == documents_before
    assert stored_files(settings) == before, "no blob, no thumbnail, no temp file left"


def test_photos_must_be_photos(client, draft, settings):
    case_no, code = draft["case_no"], draft["code"]
    before = stored_files(settings)
    action = f"/cases/{case_no}/materials/{code}/files"
    pdf_as_photo = [EMPTY_FILE, ("photos", ("scan.pdf", PDF_BYTES, "application/pdf"))]
    response = post_upload(client, action, pdf_as_photo)
    assert response.status_code == 415
    assert "PDF 文件请用“选择文件”上传" in material_block(response.text, code)
    # An iPhone photo sent as HEIC: say how to get a JPG.
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    two = [
        EMPTY_FILE,
        ("photos", ("IMG_1.jpg", jpeg_bytes(), "image/jpeg")),
        ("photos", ("IMG_2.HEIC", heic, "image/heic")),
    ]
    response = post_upload(client, action, two)
    assert response.status_code == 415
    assert "兼容性最佳" in material_block(response.text, code)
    assert stored_files(settings) == before


def test_nothing_chosen_says_what_to_press(client, draft):
    case_no, code = draft["case_no"], draft["code"]
    response = post_upload(
        client, f"/cases/{case_no}/materials/{code}/files", [EMPTY_FILE, EMPTY_PHOTOS]
    )
    assert response.status_code == 400
    assert "请先点“选择文件”或“拍照”" in material_block(response.text, code)


def test_without_js_the_redirect_lands_on_the_material_with_its_confirmation(client, auth, draft):
    case_no, code = draft["case_no"], draft["code"]
    other = draft["item"]["materials"][1]["code"]
    response = post_upload(
        client,
        f"/cases/{case_no}/materials/{code}/files",
        [("file", ("营业执照.pdf", PDF_BYTES, "application/pdf")), EMPTY_PHOTOS],
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{case_no}#m-{code}"
    page = client.get(response.headers["location"]).text
    done = f'<p class="notice notice-success upload-done" id="done-{code}" role="status"'
    assert done in material_block(page, code), "the confirmation stands at the material"
    assert "已上传“营业执照.pdf”" in material_block(page, code)
    assert "upload-done" not in material_block(page, other)
    assert "已上传“" not in page.split(f'<li id="m-{code}">')[0], "not at the top as well"
    # Shown once: a reload (or the next page) no longer says it.
    assert "upload-done" not in client.get(f"/cases/{case_no}").text


def test_a_returned_file_is_replaced_in_one_step(client, auth, person, formal, settings):  # noqa: F811
    case_no, code, other = formal["case_no"], formal["named"]["code"], formal["other"]["code"]
    web_login(client, person)
    (old,) = files_of(client, auth, case_no, code)
    assert request_correction(client, case_no, code).status_code == 200
    page = client.get(f"/cases/{case_no}").text
    action = f"/cases/{case_no}/materials/{code}/files/{old['id']}/replace"
    block = material_block(page, code)
    assert f'action="{action}"' in block, "one form per returned file"
    assert "选择新文件" in block

    new_pdf = PDF_BYTES + b"%stamped\n"
    response = post_upload(
        client, action, [("file", ("盖章版.pdf", new_pdf, "application/pdf")), EMPTY_PHOTOS]
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/cases/{case_no}#m-{code}"
    (now,) = files_of(client, auth, case_no, code)
    assert now["filename"] == "盖章版.pdf" and now["id"] != old["id"]
    assert client.get(f"/cases/{case_no}/files/{old['id']}").status_code == 404
    landed = material_block(client.get(response.headers["location"]).text, code)
    assert "已上传“盖章版.pdf”，原文件已替换" in landed
    # The correction can go: the named material has its new file.
    review = client.get(f"/cases/{case_no}/correction")
    assert review.status_code == 200 and "还没有上传补正后的新文件" not in review.text

    # A bad new file changes nothing: the file there stays.
    bad = post_upload(
        client,
        f"/cases/{case_no}/materials/{code}/files/{now['id']}/replace",
        [("file", ("x.pdf", b"not a pdf at all", "application/pdf")), EMPTY_PHOTOS],
    )
    assert bad.status_code == 415
    assert f'id="err-{code}-{now["id"]}"' in material_block(bad.text, code), "by its form"
    assert files_of(client, auth, case_no, code) == [now]
    # Only what the bureau named may change, and only a file of that material.
    (kept,) = files_of(client, auth, case_no, other)
    refused = post_upload(
        client,
        f"/cases/{case_no}/materials/{other}/files/{kept['id']}/replace",
        [("file", ("y.pdf", new_pdf, "application/pdf")), EMPTY_PHOTOS],
    )
    assert refused.status_code == 409
    wrong = post_upload(
        client,
        f"/cases/{case_no}/materials/{code}/files/{kept['id']}/replace",
        [("file", ("y.pdf", new_pdf, "application/pdf")), EMPTY_PHOTOS],
    )
    assert wrong.status_code == 404
    assert files_of(client, auth, case_no, other) == [kept]


def test_a_returned_file_of_someone_else_cannot_be_replaced(client, auth, formal):  # noqa: F811
    from tests.conftest import register

    case_no, code = formal["case_no"], formal["named"]["code"]
    (old,) = files_of(client, auth, case_no, code)
    assert request_correction(client, case_no, code).status_code == 200
    intruder = register(client)
    web_login(client, intruder)
    response = post_upload(
        client,
        f"/cases/{case_no}/materials/{code}/files/{old['id']}/replace",
        [("file", ("z.pdf", PDF_BYTES + b"%z\n", "application/pdf")), EMPTY_PHOTOS],
    )
    assert response.status_code == 404
    assert files_of(client, auth, case_no, code) == [old]


def catalogue_links() -> list[tuple[str, str, str]]:
    data = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    return [
        (item["code"], m["code"], m[key])
        for item in data["items"]
        for m in item["materials"]
        for key in ("blank_form", "sample")
        if m.get(key)
    ]


def test_blank_forms_and_samples_are_linked_and_served(client, auth, person):
    links = catalogue_links()
    kinds = {path.rsplit(".", 1)[-1] for _, _, path in links}
    assert len(links) >= 20 and {"pdf", "png"} <= kinds
    for path in {p for _, _, p in links}:
        response = client.get(path)
        assert response.status_code == 200, path
        expected = "application/pdf" if path.endswith(".pdf") else "image/png"
        assert response.headers["content-type"] == expected
        if path.endswith(".pdf"):
            assert len(PdfReader(io.BytesIO(response.content)).pages) >= 1
        assert len(response.content) < 80 * 1024, f"{path} is meant to be small"
    # On the case page of an item with a 授权委托书: both links, by the material.
    item_code, code, _ = next(t for t in links if "shouquan" in t[2])
    web_login(client, person)
    case_no = new_case(client, auth, {"code": item_code})["case_no"]
    block = material_block(client.get(f"/cases/{case_no}").text, code)
    assert 'href="/static/forms/shouquan-weituoshu.pdf" download>空白表格下载（PDF）' in block
    assert 'href="/static/forms/shouquan-weituoshu-yangbiao.pdf">查看样表' in block


def test_api_upload_is_unchanged_one_file(client, auth, draft):
    # The API keeps its contract (citizen-api.md): one `file` part.
    response = upload(client, auth, draft["case_no"], draft["code"])
    assert response.status_code == 201


def test_a_supplement_upload_lands_on_its_material_too(client, auth, person):
    from tests.factories import deferrable_item, ready_for_formal

    item = deferrable_item(client)
    code = next(m["code"] for m in item["materials"] if m["deferrable"] and m["required"])
    case_no = ready_for_formal(client, auth, item)
    submitted = client.post(
        f"/api/v1/cases/{case_no}/submission",
        json={"commitment": {"deferred_materials": [code], "accepted": True}},
        headers=auth,
    )
    assert submitted.status_code == 202, submitted.text
    web_login(client, person)
    photos = [
        EMPTY_FILE,
        ("photos", ("p1.jpg", photo((600, 800), COLOURS[0]), "image/jpeg")),
        ("photos", ("p2.jpg", photo((600, 800), COLOURS[1]), "image/jpeg")),
    ]
    response = post_upload(client, f"/cases/{case_no}/supplements/{code}/files", photos)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/cases/{case_no}#m-{code}"
    page = client.get(response.headers["location"]).text
    task = page[page.index('id="supplement"') :]
    assert "2 张照片已合成一份材料" in material_block(task, code)
    review = client.get(f"/cases/{case_no}/supplement").text
    assert "（2页）.pdf" in review
