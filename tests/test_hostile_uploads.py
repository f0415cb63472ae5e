"""Upload attacks: each is refused with a clear 中文 4xx, and nothing lands outside the data dir.

Polyglots, decompression bombs, hostile file names, floods of multipart parts,
truncated and malformed bodies — through the JSON API and through the page
(with its CSRF token), checking afterwards that the temp area is empty and no
file appeared anywhere but the encrypted store.
"""

from __future__ import annotations

import io
import struct
import time
import unicodedata
import zlib

import pytest
from PIL import Image

from tests.conftest import PDF_BYTES, jpeg_bytes, png_bytes, web_login
from tests.kit import assert_clear_refusal, png_bomb, png_chunk, stored_files_of

BOUNDARY = "----hostile7MA4YWxkTrZu0gW"


# --- crafted files ------------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that merely claims huge dimensions (the pixels never come)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def zip_bytes() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("payload.html", "<html><body>hi</body></html>")
    return out.getvalue()


def png_with_text(text: bytes) -> bytes:
    """A real PNG with an extra tEXt chunk holding `text` before IEND."""
    data = png_bytes()
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + png_chunk(b"tEXt", b"Comment\x00" + text) + data[iend:]


POLYGLOTS = {
    # A PDF that runs script when opened.
    "pdf_javascript": PDF_BYTES.replace(
        b"/Type/Catalog", b"/Type/Catalog/OpenAction<</S/JavaScript/JS(app.alert(1))>>"
    ),
    "pdf_launch": PDF_BYTES.replace(b"/Type/Catalog", b"/Type/Catalog/OpenAction<</S/Launch>>"),
    "pdf_embedded_file": PDF_BYTES.replace(b"/Type/Catalog", b"/Type/Catalog/EmbeddedFile 3 0 R"),
    # A PDF that is also an HTML page.
    "pdf_html": PDF_BYTES + b"<html><script>alert(document.cookie)</script></html>",
    # An image that is also a ZIP archive (GIFAR-style), or a PHP script.
    "jpeg_zip": jpeg_bytes() + zip_bytes(),
    "png_zip": png_bytes() + zip_bytes(),
    "png_php": png_with_text(b"<?php system($_GET['c']); ?>"),
    "jpeg_html_split_over_chunks": jpeg_bytes() + b"\x00" * (64 * 1024 - 3) + b"<SCRIPT>x</script>",
}


# --- helpers ------------------------------------------------------------------------------


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A body built by hand, so names and orders no client library would send can be tried."""
    out = bytearray()
    for name, filename, data in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'.encode()
        if filename is not None:
            disposition += b'; filename="' + filename.encode("utf-8", "surrogatepass") + b'"'
        out += b"Content-Disposition: " + disposition + b"\r\n"
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def post_raw(client, url, body: bytes, headers=None, boundary: str = BOUNDARY):
    return client.post(
        url,
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})},
    )


# --- polyglots and bombs ------------------------------------------------------------------


def test_polyglots_are_refused(client, auth, api_target, fs_guard):
    for name, content in POLYGLOTS.items():
        filename = "scan.pdf" if content.startswith(b"%PDF") else "photo.jpg"
        response = client.post(
            api_target, files={"file": (filename, content, "application/pdf")}, headers=auth
        )
        assert_clear_refusal(response, 415)
        assert response.json()["error"]["code"] in {"active_content", "polyglot"}, name
    assert stored_files_of(client, auth, api_target) == []


def test_png_decompression_bomb_is_refused_before_decoding(client, auth, api_target, fs_guard):
    bomb = png_bomb(12_000, 12_000)  # 144 megapixels of zeros
    assert len(bomb) < 64 * 1024  # ... in a file smaller than a thumbnail
    started = time.monotonic()
    response = client.post(
        api_target, files={"file": ("bomb.png", bomb, "image/png")}, headers=auth
    )
    assert_clear_refusal(response, 415)
    assert response.json()["error"]["code"] == "image_too_large"
    assert time.monotonic() - started < 5  # refused from its header, not decoded


@pytest.mark.parametrize(
    "size",
    [
        (7_000, 7_000),  # 49 MP: under Pillow's own bomb limit, over ours
        (50_000, 50_000),  # 2.5 GP: Pillow's DecompressionBombError
        (1, 2**31 - 1),  # absurd aspect
    ],
)
def test_images_claiming_too_many_pixels_are_refused(client, auth, api_target, fs_guard, size):
    response = client.post(
        api_target,
        files={"file": ("big.png", png_header_only(*size), "image/png")},
        headers=auth,
    )
    assert_clear_refusal(response, 415)


def test_a_jpeg_bomb_is_refused(client, auth, api_target, fs_guard):
    # A real JPEG whose SOF header is rewritten to claim 60000×60000 pixels.
    data = bytearray(jpeg_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)
    response = client.post(
        api_target, files={"file": ("p.jpg", bytes(data), "image/jpeg")}, headers=auth
    )
    assert_clear_refusal(response, 415)


def test_a_plain_image_still_passes(client, auth, api_target, fs_guard):
    # The guard above is not simply refusing every image.
    image = Image.new("L", (2_000, 1_500), 255)
    out = io.BytesIO()
    image.save(out, "PNG")
    response = client.post(
        api_target, files={"file": ("scan.png", out.getvalue(), "image/png")}, headers=auth
    )
    assert response.status_code == 201, response.text


# --- hostile names ------------------------------------------------------------------------

HOSTILE_NAMES = [
    "../../../../etc/passwd.pdf",
    "..\\..\\..\\Windows\\system.ini.pdf",
    "/absolute/path/申请书.pdf",
    "evil\x00.pdf",
    "evil.pdf\x00.html",
    "\u202egnp.exe.pdf",  # RTL override: would read "fdp.exe.png"
    "zero\u200bwidth\ufeff.pdf",
    "tab\there\x7f\x1b[31m.pdf",
    "x" * 3_000 + ".pdf",  # near the 4 KiB header-line limit of the multipart parser
    "长" * 300 + ".pdf",
    "...",
    "..",
    "%2e%2e%2f%2e%2e%2fpasswd.pdf",
    'quote".pdf',
    "<script>alert(1)</script>.pdf",
]


def assert_clean_name(name: str) -> None:
    assert name.endswith(".pdf")
    assert "/" not in name and "\\" not in name
    assert not any(unicodedata.category(ch).startswith("C") for ch in name), repr(name)
    assert not name.startswith("."), name
    assert 1 <= len(name) <= 100, len(name)


def test_hostile_file_names_are_cleaned_and_never_touch_the_file_system(
    client, auth, person, api_target, fs_guard
):
    web_login(client, person)
    case_no = api_target.split("/")[4]
    for index, raw in enumerate(HOSTILE_NAMES):
        body = multipart([("file", raw, PDF_BYTES + f"%{index}".encode())])
        response = post_raw(client, api_target, body, headers=auth)
        assert response.status_code == 201, (raw, response.text)
        name = response.json()["filename"]
        assert_clean_name(name)
        # Offered back for download under the clean name, safely encoded in the header.
        served = client.get(f"/cases/{case_no}/files/{response.json()['id']}")
        assert served.status_code == 200
        disposition = served.headers["content-disposition"]
        assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
        assert disposition.startswith("inline; filename*=UTF-8''")
        assert "/" not in disposition.split("''", 1)[1]


@pytest.mark.parametrize(
    "raw", ["line\r\nContent-Type: text/html\r\n.pdf", "y" * 5_000 + ".pdf"], ids=["crlf", "5k"]
)
def test_a_name_breaking_the_part_header_is_a_clear_400(client, auth, api_target, fs_guard, raw):
    body = multipart([("file", raw, PDF_BYTES)])
    assert_clear_refusal(post_raw(client, api_target, body, headers=auth), 400)


def test_name_only_in_rfc2231_form_is_a_clear_400(client, auth, api_target, fs_guard):
    body = (
        (
            f"--{BOUNDARY}\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''..%2F..%2Fx.pdf\r\n"
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + PDF_BYTES[:500]
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    assert_clear_refusal(post_raw(client, api_target, body, headers=auth), 400)


# --- floods and malformed bodies ------------------------------------------------------------


def ten_thousand_parts(extra: list[tuple[str, str | None, bytes]] | None = None) -> bytes:
    parts = list(extra or []) + [(f"f{i}", None, b"x") for i in range(10_000)]
    return multipart(parts)


def test_ten_thousand_tiny_parts_on_the_api_are_refused_quickly(client, auth, api_target, fs_guard):
    started = time.monotonic()
    response = post_raw(client, api_target, ten_thousand_parts(), headers=auth)
    assert_clear_refusal(response, 400)
    assert response.json()["error"]["code"] == "too_many_parts"
    assert time.monotonic() - started < 5


def test_ten_thousand_tiny_parts_on_the_page_are_refused(client, page_target, fs_guard):
    url, token, _ = page_target
    body = ten_thousand_parts([("csrf_token", None, token.encode())])
    response = post_raw(client, url, body)
    assert_clear_refusal(response, 400)
    assert "表单字段过多" in response.text


def test_ten_thousand_parts_on_an_ordinary_form_are_a_4xx(client, page_target, fs_guard):
    _, token, case_no = page_target
    body = ten_thousand_parts([("csrf_token", None, token.encode())])
    response = post_raw(client, f"/cases/{case_no}/form", body)
    assert_clear_refusal(response, 400)
    # And ten thousand url-encoded fields are no more than a form with extras.
    fields = "&".join(f"f{i}=x" for i in range(10_000)) + f"&csrf_token={token}"
    response = client.post(
        f"/cases/{case_no}/form",
        content=fields,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code < 500


def test_file_part_before_the_csrf_token_is_refused_unstored(client, page_target, fs_guard):
    url, token, _ = page_target
    body = multipart([("file", "a.pdf", PDF_BYTES), ("csrf_token", None, token.encode())])
    assert_clear_refusal(post_raw(client, url, body), 403)


def test_two_files_in_one_request_are_refused(client, auth, api_target, fs_guard):
    body = multipart([("file", "a.pdf", PDF_BYTES), ("file", "b.pdf", PDF_BYTES + b"%b")])
    assert_clear_refusal(post_raw(client, api_target, body, headers=auth), 400)
    assert stored_files_of(client, auth, api_target) == []


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
MALFORMED = {
    "empty": (b"", MULTIPART),
    "truncated": (multipart([("file", "a.pdf", PDF_BYTES)])[:-40], MULTIPART),
    "no-boundary-in-body": (b"garbage without any boundary", MULTIPART),
    "no-boundary-param": (multipart([("file", "a.pdf", PDF_BYTES)]), "multipart/form-data"),
    "raw-pdf": (PDF_BYTES, "application/pdf"),
    "json": (b'{"file": "JVBERi0="}', "application/json"),
    "empty-file": (multipart([("file", "a.pdf", b"")]), MULTIPART),
    "long-field": (multipart([("other", None, b"x" * 5_000)]), MULTIPART),
    "endless-part-header": (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'.encode()
        + b"X-Long: "
        + b"h" * 3_000_000,
        MULTIPART,
    ),
}


def test_malformed_bodies_are_clear_4xx(client, auth, api_target, fs_guard):
    for name, (body, content_type) in MALFORMED.items():
        response = client.post(
            api_target, content=body, headers={**auth, "Content-Type": content_type}
        )
        assert response.status_code in (400, 413, 415), name
        assert_clear_refusal(response, (400, 413, 415))


def test_a_body_larger_than_declared_is_cut_off(client, auth, api_target, settings, fs_guard):
    # Streamed in chunks without a Content-Length: the limit holds while reading.
    big = PDF_BYTES + b"0" * (settings.max_upload_bytes + 100_000)
    body = multipart([("file", "big.pdf", big)])

    def chunks():
        for i in range(0, len(body), 65_536):
            yield body[i : i + 65_536]

    response = client.post(
        api_target,
        content=chunks(),
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert_clear_refusal(response, 413)
