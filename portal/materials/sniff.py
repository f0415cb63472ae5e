"""Deciding what an uploaded file is by its content, never by its name or declared type."""

from __future__ import annotations

import io
import warnings

from PIL import Image

from portal.errors import UnsupportedType

ALLOWED = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; more is a decompression bomb, not a scan

# Byte patterns that make a file something else as well (a polyglot): markup a
# browser would run, server scripts, PDF actions that execute.
_FORBIDDEN = (b"<script", b"<html", b"<?php", b"/javascript", b"/launch", b"/embeddedfile")
_OVERLAP = max(len(p) for p in _FORBIDDEN) - 1


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
    """Refuse (415) files that are not a sound PDF/JPEG/PNG, polyglots and image bombs."""
    if scanner.found is not None:
        raise UnsupportedType(
            "文件中含有脚本或可执行内容，不能作为申请材料。请重新扫描或另存为普通 PDF/图片后上传。",
            code="active_content",
        )
    if b"PK\x05\x06" in tail or b"PK\x03\x04" in head[:4096]:
        raise UnsupportedType("文件中夹带了压缩包内容，请上传普通的 PDF 或图片。", code="polyglot")
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
        raise UnsupportedType("图片像素过大，请压缩后再上传。", code="image_too_large") from None
    except Exception:
        raise UnsupportedType(
            "图片已损坏或无法识别，请重新拍照或另存后上传。", code="broken_image"
        ) from None
    if fmt not in ("JPEG", "PNG") or ALLOWED.get(f"image/{fmt.lower()}") is None:
        raise UnsupportedType("只能上传 PDF、JPG 或 PNG 文件。", code="unsupported_type")
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise UnsupportedType("图片像素过大，请压缩后再上传。", code="image_too_large")
