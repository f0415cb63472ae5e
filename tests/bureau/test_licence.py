"""The electronic licence PDF and the public verification page behind its QR code."""

from __future__ import annotations

import io
from datetime import date

import pytest
from pypdf import PdfReader

from bureau import licence as licence_module
from bureau.actions import licence_title
from bureau.licence import LicenceDocument, render_licence
from tests.bureau.bureau_testkit import Bureau


def _document(**overrides: object) -> LicenceDocument:
    values: dict = {
        "title": "食品经营许可证",
        "number": "WJXK2026000123",
        "holder_name": "常州市武进区湖塘镇好味道小吃店",
        "holder_id_label": "统一社会信用代码",
        "holder_id_display": "92320412MA1W9X8Y7T",
        "item_name": "食品经营许可（新办）",
        "valid_from": date(2026, 11, 22),
        "valid_to": date(2031, 11, 21),
        "decision_no": "武行审许字〔2026〕第123号",
        "issued_on": date(2026, 11, 22),
        "verify_url": "http://bureau.test/verify/WJXK2026000123",
    }
    values.update(overrides)
    return LicenceDocument(**values)


def _text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_pdf_carries_the_licence_fields() -> None:
    text = _text(render_licence(_document()))
    for expected in (
        "食品经营许可证",
        "WJXK2026000123",
        "好味道小吃店",
        "92320412MA1W9X8Y7T",
        "2031年11月21日",
        "武行审许字〔2026〕第123号",
        "常州市武进区行政审批局",
        "http://bureau.test/verify/WJXK2026000123",
    ):
        assert expected in text, expected


def test_builtin_cid_font_when_no_truetype_font_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(licence_module, "_TRUETYPE_CANDIDATES", ())
    monkeypatch.setattr(licence_module, "_font_cache", {})
    pdf = render_licence(_document(valid_to=None))
    assert b"STSong-Light" in pdf
    text = _text(pdf)
    assert "食品经营许可证" in text
    assert "长期" in text


def test_licence_titles() -> None:
    assert licence_title("食品经营许可（新办）") == "食品经营许可证"
    assert licence_title("公共场所卫生许可证核发") == "公共场所卫生许可证"
    assert licence_title("药品零售企业") == "药品零售企业许可证"


def test_enterprise_id_is_printed_in_full(bureau: Bureau) -> None:
    applicant = {
        "kind": "enterprise",
        "name": "常州好味道餐饮有限公司",
        "id_type": "USCC",
        "id_number": "91320412MA1W9X8Y7T",
        "phone": "051988888888",
    }
    case_no = bureau.new_case(stage="formal", applicant=applicant)
    bureau.act(case_no, "accept")
    licence = bureau.act(case_no, "approve", {"licence_number": "WJ-TEST-0001"})["event"]["data"][
        "licence"
    ]
    text = _text(bureau.get_blob(licence["sha256"]).content)
    assert "91320412MA1W9X8Y7T" in text
    assert "WJ-TEST-0001" in text
    taken = bureau.accepted_case()
    again = bureau.api("POST", f"/cases/{taken}/approve", {"licence_number": "WJ-TEST-0001"})
    assert again.status_code == 422


def test_verification_page(bureau: Bureau) -> None:
    case_no = bureau.approved_case()
    number = bureau.case(case_no)["licence"]["number"]
    assert bureau.case(case_no)["licence"]["verify_url"] == f"http://bureau.test/verify/{number}"
    page = bureau.client.get(f"/verify/{number}")
    assert page.status_code == 200
    assert "有效" in page.text
    assert "张*" in page.text  # a person's name is masked on the public page
    assert "张三" not in page.text
    missing = bureau.client.get("/verify/NOPE-123")
    assert missing.status_code == 404
    assert "未查到" in missing.text

    future = bureau.approved_case(valid_from="2099-01-01", valid_to="2099-12-31")
    number = bureau.case(future)["licence"]["number"]
    assert "尚未生效" in bureau.client.get(f"/verify/{number}").text
