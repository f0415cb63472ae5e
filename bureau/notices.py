"""Documents (文书): the notices and decisions a case's steps issue, as A4 PDFs."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from bureau.licence import AUTHORITY, GREY, INK, RED, cjk_font, wrap

# Action event -> (document name, 文号 prefix): the names of the contract's "Documents".
KINDS: dict[str, tuple[str, str]] = {
    "case.accepted": ("受理通知书", "武审受"),
    "correction.requested": ("补正材料通知书", "武审补"),
    "case.rejected": ("不予受理决定书", "武审不受"),
    "case.approved": ("准予行政许可决定书", "武审许"),
    "case.denied": ("不予行政许可决定书", "武审不许"),
    "deadline.extended": ("延期通知书", "武审延"),
}


@dataclass(frozen=True)
class Notice:
    name: str
    number: str
    addressee: str
    case_no: str
    item_name: str
    paragraphs: list[str]
    issued_on: date
    authority: str = AUTHORITY


def render_notice(notice: Notice, *, font_path: str = "") -> bytes:
    """The document as PDF bytes: title, 文号, addressee, body, issuer and date."""
    font = cjk_font(font_path)
    buffer = io.BytesIO()
    width, height = A4
    canvas = Canvas(buffer, pagesize=A4)
    canvas.setTitle(f"{notice.name} {notice.number}")
    canvas.setAuthor(notice.authority)
    canvas.setCreator("常州市武进区行政审批局 审批系统")
    canvas.setFillColor(RED)
    canvas.setFont(font, 22)
    canvas.drawCentredString(width / 2, height - 90, notice.authority)
    canvas.setFont(font, 20)
    canvas.drawCentredString(width / 2, height - 125, notice.name, charSpace=4)
    canvas.setFillColor(INK)
    canvas.setFont(font, 12)
    canvas.drawCentredString(width / 2, height - 150, notice.number)
    y = height - 195
    canvas.setFont(font, 13)
    canvas.drawString(72, y, f"{notice.addressee}：")
    y -= 28
    body = [
        f"你（单位）申请的“{notice.item_name}”（办件编号 {notice.case_no}）：",
        *notice.paragraphs,
    ]
    for paragraph in body:
        for line in wrap("　　" + paragraph, font, 13, width - 144):
            canvas.drawString(72, y, line)
            y -= 22
        y -= 6
    canvas.drawRightString(width - 72, y - 40, notice.authority)
    canvas.drawRightString(
        width - 72,
        y - 64,
        f"{notice.issued_on.year}年{notice.issued_on.month}月{notice.issued_on.day}日",
    )
    canvas.setFillColor(GREY)
    canvas.setFont(font, 9)
    canvas.drawString(72, 50, "本文书由审批系统出具，与纸质文书具有同等效力。")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
