"""材料寄递 at the reference back office: originals.posted shown to staff, 原件已签收 sent back.

Shapes from docs/bureau-protocol.md ("材料寄递"), written out here by hand.
"""

from __future__ import annotations

from tests.bureau.bureau_testkit import Bureau, csrf_of, staff_login

POSTED = {
    "method": "courier_pickup",
    "carrier": "EMS",
    "tracking_no": "1012345678901",
    "materials": [{"code": "M05", "name": "专业人员资格证明"}],
    "address": {
        "recipient": "王寄件",
        "phone": "13812345678",
        "province": "江苏省",
        "city": "常州市",
        "district": "武进区",
        "detail": "湖塘镇花园街 12 号",
    },
}


def test_posted_is_shown_and_received_goes_back_once(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    assert "originals-received" not in bureau.case(case_no)["actions"]
    assert bureau.post_event("originals.posted", case_no, POSTED).json() == {"status": "ok"}
    case = bureau.case(case_no)
    assert case["originals"]["tracking_no"] == "1012345678901"
    assert case["originals"]["address_text"] == "江苏省常州市武进区湖塘镇花园街 12 号"
    assert case["originals"]["received"] is None
    assert "originals-received" in case["actions"]

    answer = bureau.act(
        case_no, "originals-received", {"received_at": "2026-12-04T09:30", "note": "已核验"}
    )
    assert answer["event"]["type"] == "originals.received"
    [sent] = bureau.portal.wait_for(1, case_no=case_no)
    assert sent["type"] == "originals.received"
    assert sent["data"] == {"received_at": "2026-12-04T09:30:00+08:00", "note": "已核验"}
    case = bureau.case(case_no)
    assert case["originals"]["received"]["note"] == "已核验"
    assert "originals-received" not in case["actions"]
    again = bureau.api("POST", f"/cases/{case_no}/originals-received", {})
    assert again.status_code == 409
    # The applicant can no longer change it once signed for.
    late = bureau.post_event(
        "originals.posted", case_no, {**POSTED, "tracking_no": "1012345678902"}
    )
    assert late.status_code == 409


def test_bad_originals_posted_is_422_and_status_is_checked(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    missing = bureau.post_event("originals.posted", case_no, {"method": "dropoff", "carrier": "SF"})
    assert missing.status_code == 422
    no_hall = bureau.post_event("originals.posted", case_no, {"method": "counter"})
    assert no_hall.status_code == 422
    prereview = bureau.new_case(stage="prereview")
    early = bureau.post_event("originals.posted", prereview, POSTED)
    assert early.status_code == 409
    assert bureau.case(case_no)["originals"] is None


def test_console_shows_originals_and_signs_by_form(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    counter = {"method": "counter", "hall": "WJ-ZWZX", "materials": []}
    assert bureau.post_event("originals.posted", case_no, counter).status_code == 200
    staff_login(bureau)
    page = bureau.client.get(f"/staff/cases/{case_no}")
    assert page.status_code == 200
    assert "原件寄递" in page.text and "窗口递交" in page.text and "WJ-ZWZX" in page.text
    assert "尚未签收" in page.text
    signed = bureau.client.post(
        f"/staff/cases/{case_no}/actions/originals-received",
        data={"csrf_token": csrf_of(page.text), "received_at": "", "note": "窗口核验原件"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    [sent] = bureau.portal.wait_for(1, case_no=case_no)
    assert sent["type"] == "originals.received" and sent["data"]["note"] == "窗口核验原件"
    assert "已签收" in bureau.client.get(f"/staff/cases/{case_no}").text
