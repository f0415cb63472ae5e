"""The electronic licence: an A4 landscape PDF with Chinese text and a verification QR code."""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.colors import Color, HexColor
from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

log = logging.getLogger(__name__)

AUTHORITY = "常州市武进区行政审批局"

# TrueType CJK fonts (glyf outlines, which reportlab can embed and subset). The Noto CJK
# fonts Debian ships are OpenType/CFF, which reportlab cannot embed, so they are not here.
_TRUETYPE_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf",
)
# Built into every PDF reader that handles Chinese (Adobe-GB1): nothing to embed, so a
# licence renders even where no TrueType CJK font is installed.
_CID_FALLBACK = "STSong-Light"

_font_lock = threading.Lock()
_font_cache: dict[str, str] = {}

INK = HexColor("#1f2933")
RED = HexColor("#a61b1b")
GOLD = HexColor("#b8860b")
GREY = HexColor("#6b7280")


@dataclass(frozen=True)
class LicenceDocument:
    """Everything printed on a licence."""

    title: str
    number: str
    holder_name: str
    holder_id_label: str
    holder_id_display: str
    item_name: str
    valid_from: date
    valid_to: date | None
    decision_no: str
    issued_on: date
    verify_url: str
    authority: str = AUTHORITY


def cjk_font(preferred: str = "") -> str:
    """Register (once) and name the font for Chinese text: an embeddable TrueType, else STSong."""
    with _font_lock:
        if preferred in _font_cache:
            return _font_cache[preferred]
        name = _register_truetype(preferred) or _register_cid()
        _font_cache[preferred] = name
        return name


def _register_truetype(preferred: str) -> str | None:
    candidates = ([preferred] if preferred else []) + list(_TRUETYPE_CANDIDATES)
    for path in candidates:
        if not Path(path).is_file():
            continue
        name = "LicenceCJK-" + Path(path).stem
        try:
            font = TTFont(name, path, subfontIndex=0)
        except (TTFError, OSError, ValueError) as exc:
            log.info("font %s not usable for licences: %s", path, exc)
            continue
        # A font without these glyphs would print boxes: skip it.
        if not all(ord(ch) in font.face.charToGlyph for ch in "许可证武进审批局"):
            continue
        pdfmetrics.registerFont(font)
        return name
    return None


def _register_cid() -> str:
    if _CID_FALLBACK not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(_CID_FALLBACK))
    log.info("no TrueType CJK font found; licences use the built-in CID font %s", _CID_FALLBACK)
    return _CID_FALLBACK


def _cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break by width, character by character: Chinese has no spaces to break at."""
    lines: list[str] = []
    current = ""
    for ch in text:
        if current and pdfmetrics.stringWidth(current + ch, font, size) > width:
            lines.append(current)
            current = ch.lstrip()
        else:
            current += ch
    lines.append(current)
    return lines


def _draw_qr(canvas: Canvas, data: str, x: float, y: float, size: float) -> None:
    """The QR code as vector squares: crisp at any zoom and in print."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    cell = size / len(matrix)
    canvas.setFillColor(INK)
    for row_index, row in enumerate(matrix):
        top = y + size - (row_index + 1) * cell
        col = 0
        while col < len(row):
            if not row[col]:
                col += 1
                continue
            start = col
            while col < len(row) and row[col]:
                col += 1
            # One rectangle per run of dark modules keeps the file small.
            canvas.rect(x + start * cell, top, (col - start) * cell, cell, stroke=0, fill=1)


def render_licence(doc: LicenceDocument, *, font_path: str = "") -> bytes:
    """The licence as PDF bytes."""
    font = cjk_font(font_path)
    buffer = io.BytesIO()
    width, height = landscape(A4)
    canvas = Canvas(buffer, pagesize=(width, height))
    canvas.setTitle(f"{doc.title} {doc.number}")
    canvas.setAuthor(doc.authority)
    canvas.setSubject(f"{doc.item_name} 电子证照")
    canvas.setCreator("常州市武进区行政审批局 审批系统")

    # Frame: a gold outer rule and a thin red inner rule.
    canvas.setStrokeColor(GOLD)
    canvas.setLineWidth(6)
    canvas.rect(24, 24, width - 48, height - 48)
    canvas.setStrokeColor(RED)
    canvas.setLineWidth(1)
    canvas.rect(36, 36, width - 72, height - 72)

    canvas.setFillColor(RED)
    canvas.setFont(font, 34)
    canvas.drawCentredString(width / 2, height - 110, doc.title, charSpace=8)
    canvas.setFillColor(GREY)
    canvas.setFont(font, 12)
    canvas.drawCentredString(width / 2, height - 135, "（电子证照）", charSpace=2)
    canvas.setFont(font, 11)
    canvas.drawRightString(width - 70, height - 70, f"编号：{doc.number}")

    valid = f"{_cn_date(doc.valid_from)} 至 {_cn_date(doc.valid_to) if doc.valid_to else '长期'}"
    rows = [
        ("名    称", doc.holder_name),
        (doc.holder_id_label, doc.holder_id_display),
        ("许可事项", doc.item_name),
        ("有效期限", valid),
        ("许可决定文号", doc.decision_no),
        ("证照编号", doc.number),
    ]
    label_x, value_x, value_width = 110, 250, width - 250 - 230
    y = height - 190
    for label, value in rows:
        canvas.setFillColor(GREY)
        canvas.setFont(font, 13)
        canvas.drawString(label_x, y, label)
        canvas.setFillColor(INK)
        canvas.setFont(font, 15)
        lines = wrap(value, font, 15, value_width)
        for line in lines:
            canvas.drawString(value_x, y, line)
            y -= 22
        y -= 12

    # Verification: QR code with its URL, bottom left.
    qr_size = 104
    _draw_qr(canvas, doc.verify_url, 70, 70, qr_size)
    canvas.setFillColor(GREY)
    canvas.setFont(font, 9)
    canvas.drawString(70 + qr_size + 12, 70 + qr_size - 12, "扫描二维码核验证照真伪")
    canvas.drawString(70 + qr_size + 12, 70 + qr_size - 26, doc.verify_url)

    # Issuer and date, bottom right.
    canvas.setFillColor(INK)
    canvas.setFont(font, 15)
    canvas.drawRightString(width - 90, 120, f"发证机关：{doc.authority}")
    canvas.setFont(font, 13)
    canvas.drawRightString(width - 90, 96, _cn_date(doc.issued_on))
    canvas.setFillColor(Color(0.65, 0.1, 0.1, alpha=0.85))
    canvas.setFont(font, 9)
    canvas.drawRightString(width - 90, 60, "本证照由审批系统签发，持证人信息以核验页面为准。")

    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def mask_person_id(id_number: str) -> str:
    """居民身份证 printed as 3204************1X: the first 4 and the last 2 kept."""
    if len(id_number) <= 6:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 6) + id_number[-2:]
