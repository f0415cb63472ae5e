"""Deciding what an uploaded file is by its content, never by its name or declared type.

Two passes. While the file streams in, `ContentScanner` and `check_content` look at
raw bytes (cheap, and they refuse an image bomb from its header before anything is
decoded). Once it is stored, `check_stored` parses it the way a viewer would: pypdf
walks every object of a PDF (object streams included, names decoded), Pillow decodes
an image completely, and the end of the file is located exactly, so nothing rides
behind it.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import pypdf
from PIL import Image, ImageOps
from pypdf.errors import LimitReachedError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, StreamObject

from portal.errors import UnsupportedType

log = logging.getLogger(__name__)

ALLOWED = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}

# The pixel budget. An A4 page scanned at 600 dpi is 4961×7016 = 34.8 MP and a phone's
# ordinary photo 12–13 MP, so no genuine material needs more than 36 MP. Decoding one
# image of that size takes 36 M × 4 bytes ≈ 137 MiB (Pillow keeps RGB in 4 bytes a
# pixel), and at most `_DECODE_SLOTS` decode at once; the 48/50 MP full-resolution
# mode of some phones is refused with a message asking for the normal mode.
MAX_PIXELS = 36_000_000
MAX_PIXELS_LABEL = "3600 万"
THUMB_SIZE = (160, 160)
_DECODE_SLOTS = threading.BoundedSemaphore(2)  # two cores: more would only queue for CPU

# Bytes tolerated after a PNG's IEND chunk or a JPEG's EOI marker: some writers pad.
TRAILING_PADDING = 16
# A ZIP reader finds an archive by its end-of-central-directory record, which must lie
# within the last 22 + 65535 bytes; one there makes the file an archive as well.
_ZIP_EOCD = b"PK\x05\x06"
_ZIP_WINDOW = 22 + 65_535

# Byte patterns that make a file something else as well (a polyglot): markup a
# browser would run, server scripts, PDF actions that execute. A first, raw look;
# the parsing check below is the one that cannot be dodged by spelling.
_FORBIDDEN = (b"<script", b"<html", b"<?php", b"/javascript", b"/launch", b"/embeddedfile")
_OVERLAP = max(len(p) for p in _FORBIDDEN) - 1

# --- PDF: what counts as active content ----------------------------------------------
# Dictionary keys, /Type, /Subtype and /S values and name values anywhere that run
# code, start programs, carry files or fetch/post data when the document is merely
# viewed. pypdf hands names back decoded, so /J#61vaScript arrives as /JavaScript.
_ACTIVE_NAMES = frozenset(
    {
        "/JavaScript",
        "/JS",
        "/Launch",
        "/ImportData",
        "/SubmitForm",
        "/RichMedia",
        "/RichMediaExecute",
        "/RichMediaContent",
        "/XFA",
        "/Rendition",  # may carry /JS
        "/Movie",
        "/Sound",
    }
)
_EMBEDDED_NAMES = frozenset({"/EmbeddedFile", "/EmbeddedFiles", "/FileAttachment", "/GoToE"})
# Actions that are harmless when a person clicks a link but not when the viewer runs
# them by itself (/OpenAction, /AA): fetching an address or another document.
_AUTOMATIC_ONLY = frozenset({"/URI", "/GoToR", "/SubmitForm", "/ImportData"})
_TYPE_KEYS = ("/S", "/Type", "/Subtype")

# Resource bounds of the walk. A 500-page scan has a few thousand objects; a large
# text report some tens of thousands. Object streams only hold structure (images and
# fonts are ordinary streams), so 64 MiB of them decompressed is already generous.
MAX_PDF_OBJECTS = 200_000
MAX_OBJECT_STREAM_BYTES = 64 * 1024 * 1024
_PYPDF_LIMITS = {
    "zlib_maximum_output_length": 16 * 1024 * 1024,
    "lzw_maximum_output_length": 16 * 1024 * 1024,
    "run_length_maximum_output_length": 16 * 1024 * 1024,
}

# --- the messages ---------------------------------------------------------------------
ACTIVE_PDF = (
    "PDF 中含有脚本、自动打开网址、运行程序或提交表单等可执行内容，不能作为申请材料。"
    "请用“打印为 PDF”另存或重新扫描后上传。"
)
EMBEDDED_PDF = (
    "PDF 中夹带了附件文件，不能作为申请材料。请把附件作为单独的材料上传，或另存为普通 PDF 后上传。"
)
BROKEN_PDF = "PDF 文件无法解析，可能已损坏或不完整。请重新导出或重新扫描后上传。"
EMPTY_PDF = "PDF 中没有任何页面，请检查后重新导出上传。"
ENCRYPTED_PDF = "PDF 设置了打开密码，审批人员无法查看。请去除密码后重新上传。"
COMPLEX_PDF = "PDF 结构过于复杂，无法检查。请用“打印为 PDF”另存，或分成几个文件后上传。"
BROKEN_IMAGE = "图片已损坏或不完整，请重新拍照或另存后上传。"
TRAILING_IMAGE = (
    "图片结尾之后还夹带了其他数据（例如动态照片的视频或压缩包），"
    "请关闭动态照片后重拍，或另存为普通 JPG/PNG 后上传。"
)
ARCHIVE = "文件中夹带了压缩包内容，请上传普通的 PDF 或图片。"
TOO_MANY_PIXELS = (
    f"图片像素过大（超过 {MAX_PIXELS_LABEL}像素），请压缩后上传；"
    "用手机拍摄的，请用普通拍照模式（不要用超高像素模式）重拍。"
)


def sniff(head: bytes) -> str | None:
    """The content type of a PDF, JPEG or PNG from its leading bytes; None for anything else."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


class ContentScanner:
    """Looks for forbidden patterns across the whole stream, chunk borders included."""

    def __init__(self) -> None:
        self._carry = b""
        self.found: bytes | None = None

    def feed(self, data: bytes) -> None:
        if self.found is not None:
            return
        window = (self._carry + data).lower()
        for pattern in _FORBIDDEN:
            if pattern in window:
                self.found = pattern
                return
        self._carry = window[-_OVERLAP:]


def check_content(content_type: str, head: bytes, tail: bytes, scanner: ContentScanner) -> None:
    """Refuse (415) from raw bytes: polyglots and image bombs, before anything is parsed."""
    if scanner.found is not None:
        raise UnsupportedType(
            "文件中含有脚本或可执行内容，不能作为申请材料。请重新扫描或另存为普通 PDF/图片后上传。",
            code="active_content",
        )
    if _ZIP_EOCD in tail or b"PK\x03\x04" in head[:4096]:
        raise UnsupportedType(ARCHIVE, code="polyglot")
    if content_type == "application/pdf":
        if b"%%EOF" not in tail:
            raise UnsupportedType("PDF 文件不完整或已损坏，请重新导出后上传。", code="broken_pdf")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(head)))
            width, height = image.size
            fmt = image.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UnsupportedType(TOO_MANY_PIXELS, code="image_too_large") from None
    except Exception:
        raise UnsupportedType(BROKEN_IMAGE, code="broken_image") from None
    if fmt not in ("JPEG", "PNG") or ALLOWED.get(f"image/{fmt.lower()}") is None:
        raise UnsupportedType("只能上传 PDF、JPG 或 PNG 文件。", code="unsupported_type")
    _check_pixels(width, height)


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise UnsupportedType(TOO_MANY_PIXELS, code="image_too_large")


# --- the parsing check, on the stored file ------------------------------------------------


def check_stored(content_type: str, fh: BinaryIO) -> bytes | None:
    """Parse the whole stored upload; refuse (415) what a viewer would run or cannot show.

    `fh` is the plaintext, seekable and read in pieces (never whole). Returns a JPEG
    thumbnail of an image, made from the same decode (None for a PDF, or when no
    preview could be made), so no second decode happens later inside a transaction.
    """
    _check_not_an_archive(fh)
    if content_type == "application/pdf":
        check_pdf(fh)
        return None
    return check_image(content_type, fh)


def _size_of(fh: BinaryIO) -> int:
    return fh.seek(0, io.SEEK_END)


def _check_not_an_archive(fh: BinaryIO) -> None:
    size = _size_of(fh)
    fh.seek(max(0, size - _ZIP_WINDOW))
    if _ZIP_EOCD in fh.read(_ZIP_WINDOW):
        raise UnsupportedType(ARCHIVE, code="polyglot")


# --- PDF ----------------------------------------------------------------------------------


def check_pdf(fh: BinaryIO) -> None:
    """A PDF that parses, has pages, and holds no active content or embedded files."""
    fh.seek(0)
    # Limits are per context (a ContextVar), so other pypdf use keeps its defaults.
    with pypdf.apply_configuration(None, **_PYPDF_LIMITS):
        try:
            reader = pypdf.PdfReader(fh, strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                # Only a password opens it: neither we nor the clerk could look inside.
                raise UnsupportedType(ENCRYPTED_PDF, code="encrypted_pdf")
            pages = len(reader.pages)
            finding = _find_active_content(reader)
        except UnsupportedType:
            raise
        except LimitReachedError:  # one of the pypdf limits above, or its own
            raise UnsupportedType(COMPLEX_PDF, code="pdf_too_complex") from None
        except Exception as exc:  # pypdf raises many kinds on a malformed file
            log.info("pdf refused, does not parse: %s", type(exc).__name__)
            raise UnsupportedType(BROKEN_PDF, code="broken_pdf") from None
    if finding is not None:
        raise finding
    if pages < 1:
        raise UnsupportedType(EMPTY_PDF, code="empty_pdf")


def _object_refs(reader: pypdf.PdfReader) -> tuple[list[tuple[int, int]], dict[int, list[int]]]:
    """Every object the cross-reference lists: plain ones, and members by object stream."""
    plain = [
        (num, gen)
        for gen, table in reader.xref.items()
        for num in table
        if num not in reader.xref_objStm
    ]
    in_streams: dict[int, list[int]] = {}
    for num, (stream_num, _index) in reader.xref_objStm.items():
        in_streams.setdefault(int(stream_num), []).append(num)
    if len(plain) + len(reader.xref_objStm) > MAX_PDF_OBJECTS:
        raise UnsupportedType(COMPLEX_PDF, code="pdf_too_complex")
    return plain, in_streams


def _find_active_content(reader: pypdf.PdfReader) -> UnsupportedType | None:
    """Walk every object in the document (not only what the page tree reaches).

    Each object is looked at once, then dropped from pypdf's cache, so memory stays
    at one object (plus one decompressed object stream) rather than the whole file.
    """
    plain, in_streams = _object_refs(reader)
    stream_bytes = 0
    for num, gen in plain:
        finding = _inspect(reader, reader.get_object(IndirectObject(num, gen, reader)))
        if finding is not None:
            return finding
        if num not in in_streams:  # an object stream is dropped with its members below
            reader.resolved_objects.pop((gen, num), None)
    for stream_num, members in in_streams.items():
        stream = reader.get_object(stream_num)
        if not isinstance(stream, StreamObject):
            raise UnsupportedType(BROKEN_PDF, code="broken_pdf")
        count = stream.get("/N")
        if isinstance(count, IndirectObject):
            count = count.get_object()
        if not isinstance(count, int) or count > MAX_PDF_OBJECTS:
            raise UnsupportedType(COMPLEX_PDF, code="pdf_too_complex")
        stream_bytes += len(stream.get_data())
        if stream_bytes > MAX_OBJECT_STREAM_BYTES:
            raise UnsupportedType(COMPLEX_PDF, code="pdf_too_complex")
        for num in members:
            finding = _inspect(reader, reader.get_object(num))
            if finding is not None:
                return finding
        # pypdf parsed (and cached) every listed object of the stream at once; objects
        # the cross-reference does not list there are stale, for pypdf as for a viewer.
        for num in members:
            reader.resolved_objects.pop((0, num), None)
        reader.resolved_objects.pop((0, stream_num), None)
    return _inspect(reader, reader.trailer)


def _direct_parts(obj: object) -> Iterator[object]:
    """`obj` and every dictionary, array and name nested in it directly (no references)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, DictionaryObject):  # a StreamObject is one too
            stack.extend(item.keys())
            stack.extend(v for v in item.values() if not isinstance(v, IndirectObject))
        elif isinstance(item, ArrayObject):
            stack.extend(v for v in item if not isinstance(v, IndirectObject))


def _inspect(reader: pypdf.PdfReader, obj: object) -> UnsupportedType | None:
    for part in _direct_parts(obj):
        if isinstance(part, NameObject):
            if part in _ACTIVE_NAMES:
                return UnsupportedType(ACTIVE_PDF, code="active_content")
            if part in _EMBEDDED_NAMES:
                return UnsupportedType(EMBEDDED_PDF, code="embedded_file")
        elif isinstance(part, DictionaryObject):
            automatic = [part.get("/OpenAction")]
            triggers = part.get("/AA")
            if triggers is not None:
                triggers = triggers.get_object()
                if isinstance(triggers, DictionaryObject):
                    automatic.extend(triggers.values())
            if any(kind in _AUTOMATIC_ONLY for kind in _action_kinds(automatic)):
                return UnsupportedType(ACTIVE_PDF, code="active_content")
    return None


def _action_kinds(actions: Iterable[object]) -> Iterator[str]:
    """The /S of each action given, and of every action chained to it by /Next."""
    stack = list(actions)
    seen: set[int] = set()
    for _ in range(10_000):  # /Next chains may loop; a real document has a handful
        if not stack:
            return
        action = stack.pop()
        if isinstance(action, IndirectObject):
            if action.idnum in seen:
                continue
            seen.add(action.idnum)
            action = action.get_object()
        if isinstance(action, ArrayObject):  # a /Next array; an /OpenAction destination
            stack.extend(action)
        elif isinstance(action, DictionaryObject):
            kind = action.get("/S")
            if isinstance(kind, IndirectObject):
                kind = kind.get_object()
            if isinstance(kind, NameObject):
                yield str(kind)
            stack.append(action.get("/Next"))
    raise UnsupportedType(COMPLEX_PDF, code="pdf_too_complex")


# --- images --------------------------------------------------------------------------------


def check_image(content_type: str, fh: BinaryIO) -> bytes | None:
    """An image that decodes completely and ends where its format says; its thumbnail."""
    end = _png_end(fh) if content_type == "image/png" else _jpeg_end(fh)
    if _size_of(fh) - end > TRAILING_PADDING:
        raise UnsupportedType(TRAILING_IMAGE, code="trailing_data")
    expected = "PNG" if content_type == "image/png" else "JPEG"
    with _DECODE_SLOTS:
        try:
            fh.seek(0)
            with Image.open(fh, formats=[expected]) as image:
                _check_pixels(*image.size)
                image.verify()  # PNG: every chunk's CRC; cheap, before the full decode
            fh.seek(0)
            image = Image.open(fh, formats=[expected])
            _check_pixels(*image.size)  # before load(): never decode past the budget
            if expected == "JPEG":
                # libjpeg still reads every scan of the file (a cut-off or corrupt one
                # fails), but builds pixels at 1/2–1/8 scale: a 36 MP photo costs ~5 MB.
                image.draft("RGB", (THUMB_SIZE[0] * 2, THUMB_SIZE[1] * 2))
            image.load()
        except UnsupportedType:
            raise
        except Exception as exc:  # truncated, corrupt, or not what its signature says
            log.info("image refused, does not decode: %s", type(exc).__name__)
            raise UnsupportedType(BROKEN_IMAGE, code="broken_image") from None
        try:
            return _thumbnail(image)
        except Exception:  # a preview is a nicety; the file itself passed its checks
            log.warning("could not make a thumbnail", exc_info=True)
            return None
        finally:
            image.close()


def _thumbnail(image: Image.Image) -> bytes:
    """A small JPEG preview for the phone's material list (the original may be megabytes)."""
    image.thumbnail(THUMB_SIZE)  # first, so the conversions below work on a small copy
    small = ImageOps.exif_transpose(image).convert("RGB")
    out = io.BytesIO()
    small.save(out, "JPEG", quality=70, optimize=True)
    return out.getvalue()


def _read_exactly(fh: BinaryIO, count: int) -> bytes:
    data = fh.read(count)
    if len(data) != count:
        raise UnsupportedType(BROKEN_IMAGE, code="broken_image")
    return data


# Bounds of the walks below: a real PNG has a few thousand chunks at most (one IDAT per
# row is the worst encoder), a real JPEG a few dozen segments; millions of empty ones
# would only burn CPU.
MAX_PNG_CHUNKS = 100_000
MAX_JPEG_SEGMENTS = 10_000


def _png_end(fh: BinaryIO) -> int:
    """The offset just past the IEND chunk, walking the chunks by their lengths."""
    fh.seek(8)
    for _ in range(MAX_PNG_CHUNKS):
        header = _read_exactly(fh, 8)
        length = int.from_bytes(header[:4], "big")
        if length > 2**31 - 1:
            raise UnsupportedType(BROKEN_IMAGE, code="broken_image")
        if header[4:] == b"IEND":
            _read_exactly(fh, length + 4)
            return fh.tell()
        fh.seek(length + 4, io.SEEK_CUR)  # data and CRC (checked by verify)
    raise UnsupportedType(BROKEN_IMAGE, code="broken_image")


_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0–7: no length


def _jpeg_end(fh: BinaryIO) -> int:
    """The offset just past the EOI marker, walking segments and entropy-coded data."""
    fh.seek(2)  # SOI
    for _ in range(MAX_JPEG_SEGMENTS):
        if _read_exactly(fh, 1) != b"\xff":
            raise UnsupportedType(BROKEN_IMAGE, code="broken_image")
        marker = 0xFF
        while marker == 0xFF:  # fill bytes
            marker = _read_exactly(fh, 1)[0]
        if marker == 0xD9:
            return fh.tell()
        if marker in _JPEG_STANDALONE:
            continue
        length = int.from_bytes(_read_exactly(fh, 2), "big")
        if length < 2:
            raise UnsupportedType(BROKEN_IMAGE, code="broken_image")
        fh.seek(length - 2, io.SEEK_CUR)
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            _skip_entropy_coded(fh)
    raise UnsupportedType(BROKEN_IMAGE, code="broken_image")


def _skip_entropy_coded(fh: BinaryIO) -> None:
    """Leave `fh` at the 0xFF of the marker ending a scan (0xFF00 and RSTn are data)."""
    while True:
        start = fh.tell()
        block = fh.read(64 * 1024)
        if len(block) < 2:
            raise UnsupportedType(BROKEN_IMAGE, code="broken_image")
        at = block.find(b"\xff")
        while at != -1 and at + 1 < len(block):
            following = block[at + 1]
            if following != 0x00 and not 0xD0 <= following <= 0xD7 and following != 0xFF:
                fh.seek(start + at)
                return
            at = block.find(b"\xff", at + 1)
        # Keep a trailing 0xFF for the next block: its marker byte is not read yet.
        fh.seek(start + (at if at != -1 else len(block)))
