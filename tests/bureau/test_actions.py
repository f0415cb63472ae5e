"""Staff actions through the JSON API: each sends the right signed callback, in order."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from datetime import date, timedelta

from pypdf import PdfReader

from bureau.actions import DEFAULT_REMEDY
from bureau.clock import today_cst
from tests.bureau.bureau_testkit import Bureau


def _callbacks(bureau: Bureau, case_no: str, count: int) -> list[dict]:
    events = bureau.portal.wait_for(count, case_no=case_no)
    assert all(c.signed for c in bureau.portal.received), "every callback is signed"
    for event in events:
        assert str(uuid.UUID(event["event_id"])) == event["event_id"]
        assert event["occurred_at"].endswith("+08:00")
    return events


def test_prereview_return_and_pass(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    body = {"comment": "请补正材料", "materials": [{"code": "M02", "comment": "照片模糊"}]}
    answer = bureau.act(case_no, "return", body)
    assert answer["case"]["status"] == "returned"
    assert answer["event"]["type"] == "prereview.returned"
    bureau.post_event("case.submitted", case_no, bureau.submitted_data(round=2))
    bureau.act(case_no, "pass", {"comment": "材料齐全"})

    returned, passed = _callbacks(bureau, case_no, 2)
    assert returned["type"] == "prereview.returned"
    assert returned["data"] == body
    assert returned["event_id"] == answer["event"]["event_id"]
    assert passed["type"] == "prereview.passed"
    assert passed["data"] == {"comment": "材料齐全"}
    assert bureau.case(case_no)["status"] == "prereview_passed"


def test_accept_with_generated_number_and_no_due_date(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    bureau.act(case_no, "accept")
    [accepted] = _callbacks(bureau, case_no, 1)
    assert accepted["type"] == "case.accepted"
    # Left out on purpose: the portal computes the due date from working days.
    assert set(accepted["data"]) == {"acceptance_no"}
    day = today_cst().strftime("%Y%m%d")
    assert re.fullmatch(rf"WJSL{day}\d{{5}}", accepted["data"]["acceptance_no"])

    other = bureau.new_case(stage="formal")
    due = (date.today() + timedelta(days=30)).isoformat()
    bureau.act(other, "accept", {"acceptance_no": "WJSL-MANUAL-1", "due_date": due})
    [event] = _callbacks(bureau, other, 1)
    assert event["data"] == {"acceptance_no": "WJSL-MANUAL-1", "due_date": due}

    third = bureau.new_case(stage="formal")
    taken = bureau.api("POST", f"/cases/{third}/accept", {"acceptance_no": "WJSL-MANUAL-1"})
    assert taken.status_code == 422
    assert "已被" in taken.json()["error"]["fields"]["acceptance_no"]


def test_reject(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    missing = bureau.api("POST", f"/cases/{case_no}/reject", {})
    assert missing.status_code == 422
    assert missing.json()["error"]["fields"] == {"reason": "请填写不予受理理由。"}
    bureau.act(case_no, "reject", {"reason": "不属于本机关职权范围"})
    [event] = _callbacks(bureau, case_no, 1)
    assert event == {**event, "type": "case.rejected", "data": {"reason": "不属于本机关职权范围"}}
    assert bureau.case(case_no)["status"] == "rejected"


def test_full_approval_with_licence_and_express(bureau: Bureau) -> None:
    case_no = bureau.accepted_case()
    inspection_day = (today_cst() + timedelta(days=3)).isoformat()
    bureau.act(case_no, "inspection", {"date": inspection_day, "note": "请准备健康证原件"})
    answer = bureau.act(case_no, "approve", {"valid_from": "2026-11-22"})
    licence = answer["event"]["data"]["licence"]
    bureau.act(case_no, "ship", {"carrier": "EMS", "tracking_no": "EM123456789CN"})
    bureau.act(case_no, "deliver", {"signed_at": "2026-11-25T15:30:00+08:00"})
    bureau.post_event("rating.submitted", case_no, {"level": 1, "code": 5, "comment": "服务态度差"})
    bureau.act(case_no, "reply", {"reply": "已核实并整改，感谢监督。"})

    types = [e["type"] for e in _callbacks(bureau, case_no, 6)]
    assert types == [
        "case.accepted",
        "inspection.scheduled",
        "case.approved",
        "licence.shipped",
        "licence.delivered",
        "rating.reply",
    ]
    events = {e["type"]: e for e in bureau.portal.events(case_no)}
    assert events["inspection.scheduled"]["data"] == {
        "date": inspection_day,
        "note": "请准备健康证原件",
    }
    approved = events["case.approved"]["data"]
    assert re.fullmatch(r"武行审许字〔\d{4}〕第\d+号", approved["decision_no"])
    assert approved["licence"] == {
        "name": "食品经营许可证",
        "number": licence["number"],
        "valid_from": "2026-11-22",
        "valid_to": "2031-11-21",
        "filename": f"{licence['number']}.pdf",
        "content_type": "application/pdf",
        "sha256": licence["sha256"],
    }
    assert events["licence.shipped"]["data"] == {"carrier": "EMS", "tracking_no": "EM123456789CN"}
    assert events["licence.delivered"]["data"] == {"signed_at": "2026-11-25T15:30:00+08:00"}
    assert events["rating.reply"]["data"] == {"reply": "已核实并整改，感谢监督。"}

    # The portal fetches the licence by hash and checks it.
    pdf = bureau.get_blob(licence["sha256"])
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == licence["sha256"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert licence["number"] in text
    assert "食品经营许可证" in text
    assert "常州市武进区行政审批局" in text
    assert "3204************3X" in text  # a person's ID number is masked
    assert "32041219900101123X" not in text


def test_pickup_path_and_deny(bureau: Bureau) -> None:
    case_no = bureau.accepted_case()
    bureau.post_event("delivery.selected", case_no, {"method": "pickup", "hall": "WJ-HALL-01"})
    early = bureau.api("POST", f"/cases/{case_no}/ready-for-pickup", {})
    assert early.status_code == 409
    bureau.act(case_no, "approve", {"valid_to": None})
    bureau.act(case_no, "ready-for-pickup")
    bureau.act(case_no, "deliver")
    *_, approved, ready, delivered = _callbacks(bureau, case_no, 4)
    assert "valid_to" not in approved["data"]["licence"]  # 长期有效
    assert ready["data"]["hall"] == "WJ-HALL-01"  # from the applicant's choice
    assert re.fullmatch(r"\d{6}", ready["data"]["pickup_code"])
    assert delivered["data"]["signed_at"].endswith("+08:00")

    denied_case = bureau.accepted_case()
    bureau.act(denied_case, "deny", {"reason": "现场核查不符合要求"})
    [_, denied] = _callbacks(bureau, denied_case, 2)
    assert denied["data"] == {"reason": "现场核查不符合要求", "remedy": DEFAULT_REMEDY}
    assert "六十日内" in DEFAULT_REMEDY


def test_state_conflicts_are_409_and_change_nothing(bureau: Bureau) -> None:
    case_no = bureau.new_case(stage="formal")
    for action in ("approve", "deny", "inspection", "ship", "deliver", "reply", "pass"):
        response = bureau.api("POST", f"/cases/{case_no}/{action}", {})
        assert response.status_code == 409, action
        error = response.json()["error"]
        assert error["code"] == "conflict"
        assert "待受理" in error["message"]
    bureau.act(case_no, "accept")
    assert bureau.api("POST", f"/cases/{case_no}/accept", {}).status_code == 409
    bureau.act(case_no, "approve")
    assert bureau.api("POST", f"/cases/{case_no}/deliver", {}).status_code == 409
    assert bureau.api("POST", f"/cases/{case_no}/reply", {"reply": "x"}).status_code == 409
    assert bureau.api("POST", "/cases/WJ20990101000001/accept", {}).status_code == 404
    assert bureau.api("POST", f"/cases/{case_no}/teleport", {}).status_code == 404
    assert len(_callbacks(bureau, case_no, 2)) == 2
    assert bureau.case(case_no)["actions"] == ["ready-for-pickup", "ship"]


def test_validation_messages(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    response = bureau.api(
        "POST", f"/cases/{case_no}/return", {"materials": [{"code": "M02", "comment": ""}]}
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "comment": "请填写退回意见。",
        "materials.0.comment": "请填写材料 M02 的补正意见。",
    }
    assert bureau.api("POST", f"/cases/{case_no}/return", [1]).status_code == 422
    accepted = bureau.accepted_case()
    bad_date = bureau.api("POST", f"/cases/{accepted}/inspection", {"date": "22/11/2026"})
    assert bad_date.json()["error"]["fields"]["date"].startswith("核查日期格式应为")
    past = bureau.api("POST", f"/cases/{accepted}/inspection", {"date": "2000-01-01"})
    assert past.status_code == 422
    bad_range = bureau.api(
        "POST", f"/cases/{accepted}/approve", {"valid_from": "2026-11-22", "valid_to": "2026-01-01"}
    )
    assert bad_range.status_code == 422
    # None of the failed attempts changed the case or queued a callback.
    assert bureau.case(accepted)["status"] == "accepted"
    assert [e["type"] for e in _callbacks(bureau, accepted, 1)] == ["case.accepted"]


def test_event_type_names_work_as_action_names(bureau: Bureau) -> None:
    case_no = bureau.new_case()
    assert bureau.act(case_no, "prereview.passed")["case"]["status"] == "prereview_passed"


def test_staff_api_needs_credentials(bureau: Bureau) -> None:
    assert bureau.client.get("/staff/api/v1/cases").status_code == 401
    wrong = bureau.client.get("/staff/api/v1/cases", auth=("clerk", "wrong"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Basic")
    assert "用户名或密码不正确" in wrong.json()["error"]["message"]


def test_case_listing(bureau: Bureau) -> None:
    first = bureau.new_case()
    second = bureau.new_case(stage="formal")
    listed = bureau.api("GET", "/cases", params={"status": "submitted"}).json()
    assert [c["case_no"] for c in listed["cases"]] == [second]
    assert listed["counts"] == {"prereview": 1, "submitted": 1}
    everything = bureau.api("GET", "/cases").json()
    assert [c["case_no"] for c in everything["cases"]] == [first, second]
    assert bureau.api("GET", "/cases", params={"status": "nonsense"}).status_code == 422
