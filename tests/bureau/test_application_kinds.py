"""The back office and v1.1 `application` (延续/变更/注销/补办): staff see the kind, and an
approval replaces or cancels the licence named (bureau-protocol.md, "Licences over their
life")."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from tests.bureau.bureau_testkit import STAFF_PASSWORD, STAFF_USER, Bureau, csrf_of

LABELS = {"renewal": "延续", "change": "变更", "cancellation": "注销"}


def _about(number: str, kind: str, **licence) -> dict:
    return {"kind": kind, "licence": {"number": number, "name": "食品经营许可证", **licence}}


def _filed(bureau: Bureau, kind: str, number: str, **licence) -> str:
    case_no = bureau.new_case(
        stage="formal",
        item={"code": "SC0004", "name": f"食品经营许可（{LABELS[kind]}）"},
        application=_about(number, kind, **licence),
    )
    bureau.act(case_no, "accept")
    return case_no


def _approved_data(bureau: Bureau, case_no: str) -> dict:
    events = bureau.portal.wait_for(2, case_no=case_no)
    [approved] = [e for e in events if e["type"] == "case.approved"]
    return approved["data"]


def test_a_renewal_reissues_under_the_same_number_from_the_day_after(bureau: Bureau) -> None:
    first = bureau.approved_case(
        licence_number="JY13204120000017", valid_from="2022-07-01", valid_to="2027-06-30"
    )
    case_no = _filed(bureau, "renewal", "JY13204120000017")
    detail = bureau.case(case_no)
    assert detail["application"]["kind"] == "renewal" and detail["application"]["label"] == "延续"
    assert detail["application"]["held"]["valid_to"] == "2027-06-30"
    bureau.act(case_no, "approve")  # no fields: the defaults a renewal gets
    licence = _approved_data(bureau, case_no)["licence"]
    assert licence["number"] == "JY13204120000017"
    assert licence["name"] == "食品经营许可证"
    # The new term starts the day after the old one ends and runs five years.
    assert licence["valid_from"] == "2027-07-01" and licence["valid_to"] == "2032-06-30"
    # The register holds the licence in force under that number; it verifies as the new one.
    assert bureau.case(case_no)["licence"]["valid_to"] == "2032-06-30"
    assert bureau.case(first)["licence"] is None
    # Until 30 June 2027 the number is valid under the earlier term, and says it is renewed.
    verified = bureau.client.get("/verify/JY13204120000017")
    assert verified.status_code == 200 and "已延续" in verified.text
    assert "尚未生效" not in verified.text


def test_a_renewal_of_a_licence_issued_elsewhere_uses_the_portals_term(bureau: Bureau) -> None:
    case_no = _filed(bureau, "renewal", "JY9900001", valid_from="2021-03-01", valid_to="2026-02-28")
    assert bureau.case(case_no)["application"]["held"] is None
    bureau.act(case_no, "approve")
    licence = _approved_data(bureau, case_no)["licence"]
    # That term ended on 28 February 2026: the new one cannot start in the past, so today.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert licence["number"] == "JY9900001"
    assert licence["valid_from"] == max(today, date(2026, 3, 1)).isoformat()


def test_a_cancellation_issues_nothing_and_the_licence_no_longer_verifies(bureau: Bureau) -> None:
    bureau.approved_case(licence_number="JY13204120000018", valid_from="2024-01-01")
    case_no = _filed(bureau, "cancellation", "JY13204120000018")
    bureau.act(case_no, "approve", {"licence_name": "ignored"})
    data = _approved_data(bureau, case_no)
    assert "licence" not in data and data["decision_no"]
    detail = bureau.case(case_no)
    assert detail["licence"] is None
    assert "已注销" in bureau.client.get("/verify/JY13204120000018").text
    # Nothing was issued, so nothing is handed over.
    assert not {"ready-for-pickup", "ship", "deliver"} & set(detail["actions"])
    shipped = bureau.api("POST", f"/cases/{case_no}/ship", {"tracking_no": "EMS123456"})
    assert shipped.status_code == 409


def test_a_change_under_a_new_number_voids_the_old_one(bureau: Bureau) -> None:
    bureau.approved_case(licence_number="JY13204120000019", valid_from="2024-01-01")
    case_no = _filed(bureau, "change", "JY13204120000019")
    bureau.act(case_no, "approve", {"licence_number": "JY13204120000020"})
    licence = _approved_data(bureau, case_no)["licence"]
    assert licence["number"] == "JY13204120000020"
    assert licence["valid_from"] == "2024-01-01"  # a change keeps the term
    assert "已注销" in bureau.client.get("/verify/JY13204120000019").text


def test_a_new_application_may_not_reuse_a_number(bureau: Bureau) -> None:
    bureau.approved_case(licence_number="JY13204120000021")
    case_no = bureau.accepted_case()
    answer = bureau.api("POST", f"/cases/{case_no}/approve", {"licence_number": "JY13204120000021"})
    assert answer.status_code == 422


def test_an_application_without_its_licence_is_refused(bureau: Bureau) -> None:
    data = bureau.submitted_data(stage="formal", application={"kind": "renewal"})
    answer = bureau.post_event("case.submitted", "WJ20261122999999", data)
    assert answer.status_code == 422


def test_the_console_shows_the_kind_to_staff(bureau: Bureau) -> None:
    bureau.approved_case(licence_number="JY13204120000022", valid_from="2024-01-01")
    case_no = _filed(bureau, "cancellation", "JY13204120000022")
    login = bureau.client.get("/staff/login")
    bureau.client.post(
        "/staff/login",
        data={
            "username": STAFF_USER,
            "password": STAFF_PASSWORD,
            "csrf_token": csrf_of(login.text),
        },
    )
    page = bureau.client.get(f"/staff/cases/{case_no}").text
    assert "申请类型：注销" in page and "JY13204120000022" in page
    assert "不颁发新证" in page
